// The browser (and any runtime with a global WebSocket) entry of the rhizo light client.
export { MessagingPeer, PeerError, RECONNECT, REQUEST_TIMEOUT_MS, reconnectDelay } from "./peer.js";
export { parsePairTicket } from "./ticket.js";
export { FILE_URL_PREFIX, fileUrl, isFileReady, parseFileUrl, taskFiles } from "./files.js";
export { ChannelError, Session, clientFinish, clientStart, generateKeyPair } from "./channel.js";
