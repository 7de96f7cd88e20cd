// The Node.js entry: MessagingPeer with the `ws` package as its WebSocket (Node 20 has no
// global WebSocket).
import WebSocket from "ws";

import { MessagingPeer as BasePeer } from "./peer.js";

export { PeerError, RECONNECT, REQUEST_TIMEOUT_MS, reconnectDelay } from "./peer.js";
export { parsePairTicket } from "./ticket.js";
export { FILE_URL_PREFIX, fileUrl, isFileReady, parseFileUrl, taskFiles } from "./files.js";
export { ChannelError, Session, clientFinish, clientStart, generateKeyPair } from "./channel.js";

/** MessagingPeer using `ws` unless another WebSocket class is given. */
export class MessagingPeer extends BasePeer {
  constructor(options = {}) {
    super({ WebSocket, ...options });
  }
}
