// File parts of tasks and file messages (issue 16), as the node's JSON has them: a task part
// `{ file: { id?, hash, name, size, mime, state? } }` names a file by its content hash (the
// file itself is a file message of the task's conversation; `files()` lists it by `id`), and
// A2A clients see the same file as a url part `urn:rhizo:file:HASH`.

/** The A2A URL prefix of a rhizo file (then the 64 hex digits of its content hash). */
export const FILE_URL_PREFIX = "urn:rhizo:file:";

const HASH = /^[0-9a-f]{64}$/;

/** `urn:rhizo:file:HASH` for a file part (or a bare hash). */
export function fileUrl(fileOrHash) {
  const hash = typeof fileOrHash === "string" ? fileOrHash : fileOrHash?.hash;
  if (typeof hash !== "string" || !HASH.test(hash.toLowerCase())) {
    throw new TypeError("a file's hash is 64 hex digits");
  }
  return FILE_URL_PREFIX + hash.toLowerCase();
}

/** The content hash a `urn:rhizo:file:HASH` URL names, or null for any other URL. */
export function parseFileUrl(url) {
  if (typeof url !== "string" || !url.startsWith(FILE_URL_PREFIX)) return null;
  const hash = url.slice(FILE_URL_PREFIX.length).toLowerCase();
  return HASH.test(hash) ? hash : null;
}

/**
 * Every file a task names, in order: its messages' (the request first), then its artifacts',
 * then each `all`-mode worker's. Each entry: `{ file, source, index }` where `source` is
 * "message", "artifact" or "worker" and `index` the message's or artifact's place.
 */
export function taskFiles(task) {
  const out = [];
  const collect = (parts, source, index) => {
    for (const part of parts ?? []) {
      if (part && typeof part.file === "object" && part.file !== null) out.push({ file: part.file, source, index });
    }
  };
  (task?.history ?? []).forEach((m, i) => collect(m.parts, "message", i));
  (task?.artifacts ?? []).forEach((a, i) => collect(a.parts, "artifact", i));
  (task?.workers ?? []).forEach((w) => (w.artifacts ?? []).forEach((a, i) => collect(a.parts, "worker", i)));
  return out;
}

/** Whether a file part's file is here whole (its file message arrived and finished). */
export function isFileReady(file) {
  return file?.id != null && file.state === "done";
}
