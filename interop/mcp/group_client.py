"""An ordinary MCP client (the official `mcp` Python SDK) delegating to a rhizo *group* through
`rhizo mcp`, for crates/rhizo/tests/agent_groups.rs:

    python group_client.py --rhizo target/debug/rhizo --data-dir DIR --group crew \
        --skill upper --workers 2

It calls delegate_task with the group's name as `to` (wait=true): once (one agent member runs
it) and once with mode "all" (every agent member runs it: the task lists one completed worker
per member, each with its artifact). It prints one line per step and exits non-zero, naming
the step, on the first failure.
"""

import argparse
import json
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

WAIT_SECONDS = 90


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def delegate(session: ClientSession, args, text: str, mode: str | None) -> dict:
    params = {
        "to": args.group,
        "text": text,
        "skill": args.skill,
        "wait": True,
        "wait_seconds": WAIT_SECONDS,
    }
    if mode:
        params["mode"] = mode
    result = await session.call_tool(
        "delegate_task", params, read_timeout_seconds=WAIT_SECONDS + 30
    )
    if result.is_error:
        raise SystemExit(f"FAIL delegate_task {mode}: {text_of(result)}")
    task = json.loads(text_of(result))
    print(json.dumps({"task": task}), flush=True)
    if task["status"]["state"] != "completed":
        raise SystemExit(f"FAIL delegate_task {mode}: ended {json.dumps(task['status'])}")
    return task


async def main(args: argparse.Namespace) -> int:
    server = StdioServerParameters(
        command=args.rhizo,
        args=["--data-dir", args.data_dir, "mcp"],
        env={"RHIZO_MDNS": "false", "RUST_LOG": "warn"},
    )
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            one = await delegate(session, args, "hello mcp", None)
            got = [p.get("text") for a in one["artifacts"] for p in a["parts"]]
            if got != ["HELLO MCP"] or one.get("group") is None:
                print(f"FAIL any-of: artifacts {got}, group {one.get('group')}", flush=True)
                return 1
            print("ok delegate_task to the group", flush=True)
            every = await delegate(session, args, "every mcp", "all")
            workers = every.get("workers", [])
            done = [
                w["worker"]
                for w in workers
                if w["state"] == "completed"
                and [p.get("text") for a in w.get("artifacts", []) for p in a["parts"]]
                == ["EVERY MCP"]
            ]
            if every.get("mode") != "all" or len(set(done)) != args.workers:
                print(f"FAIL mode all: workers {json.dumps(workers)}", flush=True)
                return 1
            print("ok delegate_task to the group, mode all", flush=True)
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rhizo", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--skill", required=True)
    parser.add_argument("--workers", type=int, required=True)
    sys.exit(anyio.run(main, parser.parse_args()))
