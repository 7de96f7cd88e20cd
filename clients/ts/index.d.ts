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

/** A file's state here. */
export type FileState = "offered" | "downloading" | "done" | "failed";

/** A file as `files()` lists it (`GET /v1/files`). */
export interface FileInfo {
  /** Its file message (the id `rhizo files get` and `GET /v1/files/{id}` take). */
  id: number;
  direction: "in" | "out";
  /** The contact's UID (hex) in a 1:1 conversation; null in a group. */
  contact: string | null;
  /** The group's id, for a file sent in a group. */
  group?: string;
  name: string;
  /** Plaintext bytes. */
  size: number;
  mime: string;
  state: FileState | string;
  /** Bytes of encrypted content held, out of `total_bytes`. */
  done_bytes: number;
  total_bytes: number;
  /** The content hash: 64 hex digits (the bao root of the encrypted content). */
  hash: string;
  /** Where it was last saved, once it was. */
  path?: string;
  /** Why it failed, or why it is not done yet. */
  error?: string;
  /** Chunks already verified here when this node (re)started the fetch. */
  resumed_chunks: number;
  /** Chunks this node fetched since it started. */
  fetched_chunks: number;
}

/** A file message's file as the history shows it (`GET /v1/messages`: a message's `file`). */
export interface MessageFile {
  name: string;
  size: number;
  mime: string;
  state: FileState | string;
  /** Percent of the content held (0 to 100). */
  percent: number;
}

/** A message of the history (`GET /v1/messages`); a file message carries `file`. */
export interface HistoryMessage {
  id: number;
  direction: "in" | "out";
  /** The text (a file message's caption). */
  text: string | null;
  sent_at: number;
  state: string;
  seq: number;
  error: string | null;
  replicas?: number;
  file?: MessageFile;
}

/**
 * A file a task part names by content hash (`{ file: … }`). The file itself is a file message
 * of the task's conversation: `id` and `state` are that message's here, absent until it
 * arrived. To send one, give `{ file: { id } }` of a file already sent to the agent.
 */
export interface FilePart {
  id?: number;
  /** 64 hex digits. */
  hash: string;
  name: string;
  size: number;
  mime: string;
  state?: FileState | string;
}

/** One part of a task message or artifact: exactly one of `text`, `data`, `raw`, `file`. */
export interface TaskPart {
  text?: string;
  data?: unknown;
  /** Bytes, base64 (at most 48 KiB). */
  raw?: string;
  media_type?: string;
  filename?: string;
  file?: FilePart;
}

export type TaskState =
  | "submitted" | "working" | "input-required" | "completed" | "failed" | "canceled" | "rejected" | "auth-required";

export interface TaskMessage {
  message_id: string;
  role: "user" | "agent";
  parts: TaskPart[];
}

export interface TaskArtifact {
  artifact_id: string;
  name?: string;
  description?: string;
  parts: TaskPart[];
}

export interface TaskStatus {
  state: TaskState;
  message?: TaskMessage;
  reason?: string;
  /** Unix milliseconds. */
  timestamp: number;
}

/** One worker of an `all`-mode group task. */
export interface TaskWorker {
  worker: string;
  state: TaskState;
  message?: TaskMessage;
  reason?: string;
  artifacts?: TaskArtifact[];
  updated_at: number;
}

/** A task as `tasks()` lists it (`GET /v1/tasks`). */
export interface Task {
  id: string;
  context_id: string;
  side: "client" | "worker";
  peer: string;
  peer_name?: string;
  skill?: string;
  priority: "low" | "normal" | "high" | "urgent";
  deadline?: number;
  requirements?: string[];
  status: TaskStatus;
  status_history: TaskStatus[];
  /** The task's messages, oldest first: the client's request first. */
  history: TaskMessage[];
  artifacts: TaskArtifact[];
  created_at: number;
  updated_at: number;
  group?: string;
  worker?: string;
  mode?: "any" | "all";
  workers?: TaskWorker[];
}

/** Where `taskFiles` found a file part. */
export interface TaskFileRef {
  file: FilePart;
  source: "message" | "artifact" | "worker";
  /** The message's or artifact's index. */
  index: number;
}

/** The A2A URL prefix of a rhizo file: `urn:rhizo:file:` then its hash. */
export declare const FILE_URL_PREFIX: "urn:rhizo:file:";
/** `urn:rhizo:file:HASH` of a file part (or a hash); throws a TypeError for a bad hash. */
export declare function fileUrl(fileOrHash: FilePart | string): string;
/** The hash a `urn:rhizo:file:HASH` URL names, or null for any other URL. */
export declare function parseFileUrl(url: string): string | null;
/** Every file part of a task: its messages', its artifacts', then its workers'. */
export declare function taskFiles(task: Task): TaskFileRef[];
/** Whether a file part's file message is here and done. */
export declare function isFileReady(file: FilePart | undefined | null): boolean;

/** An event as `GET /v1/events` carries it (docs/local-api.md): groups, files, tasks, presence,
 * typing, key changes, requests, contacts, devices (`message_received` and `message_state` come
 * through `onMessage` and `onMessageState`). */
export type NodeEvent =
  | { type: "file_progress"; id: number; state: string; done_bytes: number; total_bytes: number }
  | { type: "group_message_received"; id: number; group: string; from: string; text: string; sent_at: number }
  | { type: "group_message_state"; id: number; group: string; state: string; delivered: number; read: number; total: number }
  | { type: "presence"; contact: string; state: string; last_seen: number | null }
  | { type: "typing"; conversation: string; [field: string]: unknown }
  | { type: "key_change"; contact: string; [field: string]: unknown }
  | { type: string; [field: string]: unknown };

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
  /** This client's pairing id (`GET /v1/pairings`), once registered. */
  readonly clientId: string | null;
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
  /** Every other node event (groups, files, tasks, presence, typing, key changes, …). */
  onEvent(handler: (event: NodeEvent) => void): void;
  groups(): Promise<Group[]>;
  sendGroupMessage(group: string, text: string): Promise<{ id: number; state: string; total: number }>;
  files(): Promise<FileInfo[]>;
  /** Tasks as `GET /v1/tasks` lists them (file parts: see `taskFiles`). */
  tasks(): Promise<Task[]>;
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
