// Sending files from the browser: the file input and drag and drop, each uploaded as the body
// of `POST /v1/files` with its progress.

import { app, Conv, Upload, h, showLoggedOut, status } from "./core";
import { confirmKeyChange } from "./keys";
import { refreshCurrent } from "./app";

let uploadSeq = 0;

// ---- sending files -------------------------------------------------------------------------

export function pickFiles(e: Event): void {
  const input = e.target as HTMLInputElement;
  const files = [...(input.files ?? [])];
  input.value = "";
  void sendFiles(files);
}

export async function sendFiles(files: File[]): Promise<void> {
  const c = app.current;
  if (!c || !files.length || !confirmKeyChange(c)) return;
  for (const file of files) await uploadFile(c, file);
}

/** Sends `file` to `c`: its content is the body of `POST /v1/files`, with upload progress. */
export function uploadFile(c: Conv, file: File): Promise<void> {
  const up: Upload = { seq: ++uploadSeq, conv: c, name: file.name, loaded: 0, total: file.size, state: "uploading" };
  app.uploads.push(up);
  if (app.uploads.length > 20) app.uploads.splice(0, app.uploads.length - 20);
  renderUploads();
  const query = new URLSearchParams({ to: c.key, name: file.name });
  if (c.kind === "group") query.set("group", "true");
  if (file.type) query.set("mime", file.type);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/files?${query}`);
    // Never JSON: a JSON body would be read as a path on the node's machine.
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) Object.assign(up, { loaded: e.loaded, total: e.total });
      renderUploads();
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        Object.assign(up, { state: "sent", loaded: up.total });
        status(`Sent ${file.name}.`);
        void refreshCurrent();
      } else {
        up.state = "failed";
        if (xhr.status === 401) showLoggedOut();
        let why = xhr.responseText;
        try {
          const data = JSON.parse(xhr.responseText);
          why = `${data.code}: ${data.error}`;
        } catch {
          // Not JSON: show the text.
        }
        status(`Could not send ${file.name} (${why})`);
      }
      renderUploads();
      resolve();
    };
    xhr.onerror = () => {
      up.state = "failed";
      status(`Could not send ${file.name}: the connection to the node failed.`);
      renderUploads();
      resolve();
    };
    xhr.send(file);
  });
}

export function renderUploads(): void {
  const list = document.getElementById("uploads");
  const c = app.current;
  if (!list || !c) return;
  const mine = app.uploads.filter((u) => u.conv.kind === c.kind && u.conv.key === c.key);
  list.replaceChildren(
    ...mine.map((u) => {
      const pct = u.state === "sent" ? 100 : u.total ? Math.floor((100 * u.loaded) / u.total) : 0;
      const label = u.state === "failed" ? "failed" : u.state === "sent" ? "sent" : "uploading";
      return h(
        "li",
        { class: "upload", "data-upload-state": u.state },
        `Sending ${u.name}: `,
        h("progress", { max: "100", value: String(pct), "aria-label": `Sending ${u.name}: ${pct}%` }),
        ` ${pct}% ${label}`,
      );
    }),
  );
}

/** Drag and drop onto the open conversation sends the dropped files. */
export function setUpDrop(view: HTMLElement): void {
  const hasFiles = (e: DragEvent) => !!app.current && [...(e.dataTransfer?.types ?? [])].includes("Files");
  view.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    view.classList.add("dropping");
  });
  view.addEventListener("dragleave", () => view.classList.remove("dropping"));
  view.addEventListener("drop", (e) => {
    view.classList.remove("dropping");
    if (!hasFiles(e)) return;
    e.preventDefault();
    void sendFiles([...(e.dataTransfer?.files ?? [])]);
  });
}
