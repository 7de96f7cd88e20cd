"""A rhizo client agent in plain Python (standard library only): it finds an agent by skill
through the DHT (no registry, no prior contact), delegates a task to it over rhizo's
end-to-end encrypted conversations, follows `/v1/events` until the task ends and prints the
result.

Run (with a node running for the data dir):

    python3 examples/agents/client.py --skill upper --text "hello agents" [--data-dir DIR]
"""

import argparse
import sys

from rhizo_api import Api


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--skill", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    api = Api(args.data_dir)

    uid = api.find_agent(args.skill, timeout=args.timeout)
    print(f"found {uid} offering {args.skill}", file=sys.stderr, flush=True)
    task = api.delegate_and_wait(
        uid,
        args.text,
        skill=args.skill,
        timeout=args.timeout,
        on_update=lambda t: print(f"task {t['id']}: {t['status']['state']}", file=sys.stderr),
    )
    if task["status"]["state"] != "completed":
        print(f"task {task['id']} ended {task['status']}", file=sys.stderr)
        return 1
    for artifact in task["artifacts"]:
        for part in artifact["parts"]:
            print(part.get("text", part))
    return 0


if __name__ == "__main__":
    sys.exit(main())
