// File parts of tasks and file messages: the helpers, and index.d.ts's types against the JSON
// the node writes (clients/vectors/file-parts-v1.json, checked on the Rust side by
// crates/rhizo-node/src/files/json_vectors.rs against what the node serializes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { FILE_URL_PREFIX, fileUrl, isFileReady, parseFileUrl, taskFiles } from "../src/files.js";
import * as entry from "../src/index.js";

const vectors = JSON.parse(readFileSync(new URL("../../vectors/file-parts-v1.json", import.meta.url)));
const dts = readFileSync(new URL("../index.d.ts", import.meta.url), "utf8");

/** The fields `export interface NAME` declares: name → optional? */
function declared(name) {
  const start = dts.indexOf(`export interface ${name} {`);
  assert.ok(start >= 0, `index.d.ts declares ${name}`);
  const body = dts.slice(start, dts.indexOf("\n}", start));
  const fields = new Map();
  for (const m of body.matchAll(/^ {2}(\w+)(\?)?:/gm)) fields.set(m[1], m[2] === "?");
  return fields;
}

/** `value`'s keys are declared by `name`, and every required field is there. */
function matches(value, name) {
  const fields = declared(name);
  for (const key of Object.keys(value)) assert.ok(fields.has(key), `${name} declares ${key}`);
  for (const [key, optional] of fields) {
    if (!optional) assert.ok(key in value, `${name}.${key} is in the node's JSON`);
  }
}

test("the node's file JSON has exactly the fields the types declare", () => {
  const { task, file, message } = vectors;
  matches(task, "Task");
  matches(task.status, "TaskStatus");
  task.status_history.forEach((s) => matches(s, "TaskStatus"));
  for (const m of task.history) {
    matches(m, "TaskMessage");
    m.parts.forEach((p) => matches(p, "TaskPart"));
  }
  for (const a of task.artifacts) {
    matches(a, "TaskArtifact");
    a.parts.forEach((p) => matches(p, "TaskPart"));
  }
  for (const { file: f } of taskFiles(task)) matches(f, "FilePart");
  matches(file, "FileInfo");
  matches(message, "HistoryMessage");
  matches(message.file, "MessageFile");
});

test("taskFiles finds the request's and the artifact's files, in order", () => {
  const found = taskFiles(vectors.task);
  assert.deepEqual(
    found.map((f) => [f.source, f.index, f.file.name]),
    [["message", 0, "report.pdf"], ["artifact", 0, "summary.txt"]],
  );
  // The request's file message is here and done; the artifact's has not arrived yet.
  assert.equal(isFileReady(found[0].file), true);
  assert.equal(found[0].file.id, vectors.file.id, "the part's id is the file's id in files()");
  assert.equal(found[0].file.hash, vectors.file.hash);
  assert.equal(isFileReady(found[1].file), false);
  assert.equal(found[1].file.id, undefined);
  assert.deepEqual(taskFiles({}), []);
  const workers = { history: [], artifacts: [], workers: [{ artifacts: [{ parts: [{ text: "x" }, { file: found[1].file }] }] }] };
  assert.deepEqual(taskFiles(workers).map((f) => f.source), ["worker"]);
});

test("a file part is urn:rhizo:file:HASH for A2A, and back", () => {
  const { file } = taskFiles(vectors.task)[0];
  const url = fileUrl(file);
  assert.equal(url, `${FILE_URL_PREFIX}${file.hash}`);
  assert.equal(parseFileUrl(url), file.hash);
  assert.equal(fileUrl(file.hash.toUpperCase()), url, "a hash in capitals is the same file");
  assert.equal(parseFileUrl("https://example.com/report.pdf"), null);
  assert.equal(parseFileUrl(`${FILE_URL_PREFIX}abcd`), null);
  assert.throws(() => fileUrl("not a hash"), TypeError);
  assert.throws(() => fileUrl({}), TypeError);
});

test("both entries export the file helpers", () => {
  for (const name of ["FILE_URL_PREFIX", "fileUrl", "parseFileUrl", "taskFiles", "isFileReady"]) {
    assert.ok(name in entry, name);
    assert.match(dts, new RegExp(`export declare (const|function) ${name}\\b`));
  }
  const nodeEntry = readFileSync(new URL("../src/node.js", import.meta.url), "utf8");
  assert.match(nodeEntry, /taskFiles/);
});
