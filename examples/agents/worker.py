"""A rhizo worker agent in plain Python (standard library only).

It puts a skill in the node's agent card (announced in the DHT, so `rhizo agents find SKILL`
finds it), then takes tasks from its own node: `POST /v1/agent/tasks/next` claims the next
queued one, `POST /v1/agent/tasks/{id}` posts the result. It waits for work on
`/v1/events?agent=1` (which also tells the node an agent program is attached).

Run (with a node running for the data dir):

    python3 examples/agents/worker.py --skill upper [--data-dir DIR]

Its skill upper-cases the task's text; replace `handle` with your own work.
"""

import argparse
import json
import sys

from rhizo_api import Api, ApiError


def handle(text):
    """The work: the task's text in, the result out."""
    return text.upper()


def task_text(task):
    """The client's request: its text parts (data parts as JSON)."""
    parts = [p for m in task["history"] if m["role"] == "user" for p in m["parts"]]
    return "\n".join(p["text"] if "text" in p else json.dumps(p.get("data")) for p in parts)


def set_card(api, name, skill):
    """Adds `skill` to the node's card (creating the card if the node has none)."""
    try:
        card = api.get("/v1/agent/card")
    except ApiError as e:
        if e.code != "NO_CARD":
            raise
        card = {"name": name, "skills": []}
    if not any(s["id"] == skill for s in card["skills"]):
        card["skills"].append({"id": skill, "name": skill})
        api.post("/v1/agent/card", card)


def work(api, handle, skill, name, once=False):
    """Claims and runs tasks forever (or, with once, until one task is done)."""
    events = api.events("?agent=1")
    set_card(api, name, skill)
    print(f"worker ready: skill {skill}", flush=True)
    while True:
        task = api.post("/v1/agent/tasks/next")
        if task is None:
            events.next()  # a task_received event, or a tick: look again
            continue
        path = f"/v1/agent/tasks/{task['id']}"
        try:
            result = handle(task_text(task))
            update = {
                "state": "completed",
                "artifacts": [{"artifact_id": "result", "parts": [{"text": result}]}],
            }
        except Exception as e:  # the task fails, the worker goes on
            update = {"state": "failed", "reason": str(e)[:1000]}
        try:
            api.post(path, update)
            print(f"task {task['id']}: {update['state']}", flush=True)
        except ApiError as e:  # e.g. canceled meanwhile: BAD_TRANSITION
            print(f"task {task['id']}: not updated: {e}", file=sys.stderr, flush=True)
        if once:
            return


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--skill", default="upper")
    parser.add_argument("--name", default="python worker")
    args = parser.parse_args()
    work(Api(args.data_dir), handle, args.skill, args.name)
