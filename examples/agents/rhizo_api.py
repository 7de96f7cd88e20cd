"""A tiny client of a running rhizo node's local API, Python standard library only.

The node writes its API address to `<data dir>/api.addr` and its bearer token to
`<data dir>/api.token`; the data dir is `--data-dir`, else `$RHIZO_DATA_DIR`, else
`~/.local/share/rhizo`. Every example in this folder uses this module.
"""

import http.client
import json
import os
import socket
import time


class ApiError(Exception):
    """The node refused a request: HTTP status, stable code (NO_CARD, UNKNOWN_TASK, …), message."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def default_data_dir():
    if os.environ.get("RHIZO_DATA_DIR"):
        return os.environ["RHIZO_DATA_DIR"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "rhizo")


class Api:
    """The node's `/v1` API with its token."""

    def __init__(self, data_dir=None):
        data_dir = data_dir or default_data_dir()
        with open(os.path.join(data_dir, "api.addr")) as f:
            self.host, port = f.read().strip().rsplit(":", 1)
            self.port = int(port)
        with open(os.path.join(data_dir, "api.token")) as f:
            self.token = f.read().strip()

    def request(self, method, path, body=None):
        """The JSON answer, None for 204; ApiError when refused."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            if resp.status == 204:
                return None
            if resp.status >= 400:
                try:
                    err = json.loads(raw)
                    raise ApiError(resp.status, err.get("code"), err.get("error"))
                except ValueError:
                    raise ApiError(resp.status, None, raw.decode(errors="replace")) from None
            return json.loads(raw) if raw else None
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None):
        return self.request("POST", path, body if body is not None else {})

    def events(self, query="", tick=5.0):
        """`/v1/events` as a stream: open it before acting, so no event is missed."""
        return Events(self, query, tick)

    def find_agent(self, skill, timeout=60.0):
        """The UID of an agent offering `skill`, found through the DHT (retried until timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.get(f"/v1/agents/find?skill={skill}")
            if found:
                return found[0]["uid"]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no agent offering {skill!r} found in {timeout:.0f} s")
            time.sleep(1)

    def delegate_and_wait(self, to, text, skill=None, timeout=120.0, on_update=None):
        """Delegates a task and follows the event stream until it ends; the final task."""
        events = self.events()
        try:
            task = self.post("/v1/tasks", {"to": to, "text": text, "skill": skill})
            deadline = time.monotonic() + timeout
            while task["status"]["state"] not in TERMINAL:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"task {task['id']} still {task['status']['state']}")
                event = events.next()
                # On an update of ours, or a tick (an event may have been missed): re-read.
                if event is None or event.get("task_id") == task["id"]:
                    task = self.get(f"/v1/tasks/{task['id']}")
                    if on_update:
                        on_update(task)
            return task
        finally:
            events.close()


TERMINAL = {"completed", "failed", "canceled", "rejected"}


class Events:
    """Server-sent events of `/v1/events`; `next()` answers an event, or None after `tick`
    seconds without one (then look at the state yourself: events can be missed)."""

    def __init__(self, api, query, tick):
        self.api, self.query, self.tick = api, query, tick
        self.conn = None
        self._open()

    def _open(self):
        self.conn = http.client.HTTPConnection(self.api.host, self.api.port, timeout=self.tick)
        self.conn.request(
            "GET",
            f"/v1/events{self.query}",
            headers={"Authorization": f"Bearer {self.api.token}", "Accept": "text/event-stream"},
        )
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise ApiError(self.resp.status, None, "cannot open the event stream")

    def next(self):
        data = []
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    raise ConnectionError("the node closed the event stream")
                line = line.decode(errors="replace").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    try:
                        return json.loads("\n".join(data))
                    except ValueError:
                        data = []  # not JSON (a `lagged` notice): keep reading
        except (socket.timeout, TimeoutError):
            # The read timed out: reopen (the old connection is in an unknown state).
            self.close()
            self._open()
            return None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None
