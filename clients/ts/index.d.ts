// Types of @rhizo/light (both entries export the same API).

/** The connection states of seed 002. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "failed" | "closed";

/** What a paired client keeps to reconnect (hex strings); store it privately. */
export interface Credentials {
  url: string;
  nodePublicKey: string;
  clientSecretKey: string;
  clientPublicKey: string;
  pairKey: string;
}

/** A contact as `discoverPeers` lists it. */
export interface Peer {
  id: string;
  uid: string;
  online: boolean;
  verified: boolean;
}

/** A contact's identity as the node verified it against its UID. */
export interface PublicKeyInfo {
  id: string;
  uid: string;
  fingerprint: string;
  safetyNumber: string;
  verified: boolean;
  devices: string[];
}

/** Delivery state of an outgoing message. */
export interface MessageState {
  id: number;
  peer: string;
  state: "queued" | "sent" | "stored" | "delivered" | "read" | "failed" | string;
}

/** A group as `groups()` lists it (`GET /v1/groups`). */
export interface Group {
  id: string;
  name: string;
  members: number;
  role: "admin" | "member" | string;
  status: "active" | "left" | "removed" | string;
  unread: number;
  last_activity: number;
}

/** A file as `files()` lists it (`GET /v1/files`). */
export interface FileInfo {
  id: number;
  direction: "in" | "out";
  contact: string | null;
  name: string;
  size: number;
  mime: string;
  state: "offered" | "downloading" | "done" | "failed" | string;
  done_bytes: number;
  total_bytes: number;
  hash: string;
  [more: string]: unknown;
}

/** A group, file or task event, as `GET /v1/events` carries it (docs/local-api.md). */
export type NodeEvent =
  | { type: "file_progress"; id: number; state: string; done_bytes: number; total_bytes: number }
  | { type: "group_message_received"; id: number; group: string; from: string; text: string; sent_at: number }
  | { type: "group_message_state"; id: number; group: string; state: string; delivered: number; read: number; total: number }
  | { type: "group_created" | "group_member_added" | "group_member_removed" | "group_renamed" | "group_left" | "group_request" | "task_received" | "task_updated" | "task_assigned"; [field: string]: unknown };

/** An injectable clock (tests use a fake one). */
export interface Clock {
  setTimeout(f: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
  random(): number;
}

export interface ReconnectPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
  jitter: number;
}

export interface MessagingPeerOptions {
  /** A pairing ticket from `rhizo pair` (first connection). */
  ticket?: string;
  /** Stored credentials (later connections). */
  credentials?: Credentials;
  /** Called once a pairing succeeded: store these. */
  onCredentials?: (credentials: Credentials) => void;
  /** The WebSocket class; the global one by default (the Node entry passes `ws`). */
  WebSocket?: unknown;
  clock?: Clock;
  reconnect?: Partial<ReconnectPolicy>;
}

export declare const RECONNECT: Readonly<ReconnectPolicy>;
export declare const REQUEST_TIMEOUT_MS: number;
export declare function reconnectDelay(attempt: number, random: () => number, policy?: ReconnectPolicy): number;

export declare class PeerError extends Error {
  code: string;
  closeCode?: number;
}

export declare class ChannelError extends Error {
  code: "Malformed" | "HandshakeFailed" | "Replayed" | "OutOfOrder" | "Tampered" | "BadFrameSize" | "Closed";
}

export declare class MessagingPeer {
  constructor(options: MessagingPeerOptions);
  readonly state: ConnectionState;
  readonly credentials: Credentials | null;
  connect(): Promise<void>;
  disconnect(): void;
  sendMessage(to: string, text: string): Promise<{ id: number; state: string }>;
  discoverPeers(): Promise<Peer[]>;
  requestPublicKey(id: string): Promise<PublicKeyInfo>;
  onMessage(handler: (message: string, fromId: string, meta: { id: number; sentAt: number }) => void): void;
  onError(handler: (error: PeerError) => void): void;
  onPeerDisconnected(handler: (peerId: string) => void): void;
  onPeerConnected(handler: (peerId: string) => void): void;
  onConnectionStateChange(handler: (state: ConnectionState) => void): void;
  onMessageState(handler: (state: MessageState) => void): void;
  /** Group, file and task events. */
  onEvent(handler: (event: NodeEvent) => void): void;
  groups(): Promise<Group[]>;
  sendGroupMessage(group: string, text: string): Promise<{ id: number; state: string; total: number }>;
  files(): Promise<FileInfo[]>;
  /** Tasks as `GET /v1/tasks` lists them. */
  tasks(): Promise<Record<string, unknown>[]>;
}

export declare function parsePairTicket(text: string): { nodePk: Uint8Array; secret: Uint8Array; createdAt: number; url: string };
export declare function generateKeyPair(): Promise<{ secretKey: Uint8Array; publicKey: Uint8Array }>;
export declare class Session {
  constructor(sendKey: Uint8Array, recvKey: Uint8Array);
  seal(plaintext: Uint8Array): Uint8Array;
  open(frame: Uint8Array): Uint8Array;
}
export declare function clientStart(kind: 1 | 2, nodePk: Uint8Array, client: { secretKey: Uint8Array; publicKey: Uint8Array }, psk: Uint8Array): Promise<{ state: unknown; hello: Uint8Array }>;
export declare function clientFinish(state: unknown, reply: Uint8Array): Promise<{ session: Session; finish: Uint8Array; keys: { c2n: Uint8Array; n2c: Uint8Array; pairKey: Uint8Array } }>;
