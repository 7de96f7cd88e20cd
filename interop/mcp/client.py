"""An ordinary MCP client (the official `mcp` Python SDK) talking to `rhizo mcp` over stdio.

Run by crates/rhizo/tests/mcp_interop.rs:

    python client.py --rhizo target/debug/rhizo --data-dir DIR --to worker --worker-uid UID \
        --skill upper --text "hello agents" --expect "HELLO AGENTS"

It starts `rhizo --data-dir DIR mcp`, lists the tools, checks that bad input gets an error
result (not a crash), delegates a task with wait=true and checks its artifact, then uses the
other tools (get and cancel the task, find and list agents, send and read a message). It prints
one line per step and exits non-zero, naming the step, on the first failure.
"""

import argparse
import json
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {
    "list_contacts",
    "list_agents",
    "find_agents",
    "send_message",
    "read_messages",
    "delegate_task",
    "get_task",
    "cancel_task",
}


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


class StepFailed(Exception):
    """A check failed; the message names the step."""


def fail(step: str, why: str) -> None:
    raise StepFailed(f"{step}: {why}")


async def main(args: argparse.Namespace) -> int:
    failure = await scenario(args)
    if failure:
        print(f"FAIL {failure}", flush=True)
        return 1
    print("PASS", flush=True)
    return 0


async def scenario(args: argparse.Namespace) -> str | None:
    """Runs the steps against `rhizo mcp`; the failure, if one failed."""
    server = StdioServerParameters(
        command=args.rhizo,
        args=["--data-dir", args.data_dir, "mcp"],
        env={"RHIZO_MDNS": "false", "RUST_LOG": "warn"},
    )
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            try:
                await steps(session, args)
            except StepFailed as e:
                return str(e)
    return None


async def steps(session: ClientSession, args: argparse.Namespace) -> None:
    await session.initialize()
    print("ok initialize", flush=True)

    listed = await session.list_tools()
    names = {t.name for t in listed.tools}
    if names != TOOLS:
        fail("list_tools", f"got {sorted(names)}")
    delegate = next(t for t in listed.tools if t.name == "delegate_task")
    schema = delegate.input_schema
    if not {"to", "text"} <= set(schema.get("required", [])):
        fail("list_tools", f"delegate_task schema: {json.dumps(schema)}")
    print(f"ok list_tools {len(names)}", flush=True)

    bad = await session.call_tool("get_task", {"id": "not-a-task"})
    if not bad.is_error or "32 hex digits" not in text_of(bad):
        fail("bad input", f"get_task answered {bad}")
    bad = await session.call_tool(
        "delegate_task", {"to": args.to, "text": "x", "priority": "asap"}
    )
    if not bad.is_error or "priority" not in text_of(bad):
        fail("bad input", f"delegate_task answered {bad}")
    print("ok bad input is an error result", flush=True)

    contacts = await session.call_tool("list_contacts", {})
    if contacts.is_error:
        fail("list_contacts", text_of(contacts))
    print("ok list_contacts", flush=True)

    result = await session.call_tool(
        "delegate_task",
        {
            "to": args.to,
            "text": args.text,
            "skill": args.skill,
            "wait": True,
            "wait_seconds": args.wait_seconds,
        },
        read_timeout_seconds=args.wait_seconds + 30,
    )
    if result.is_error:
        fail("delegate_task", text_of(result))
    task = json.loads(text_of(result))
    state = task["status"]["state"]
    if state != "completed":
        fail("delegate_task", f"ended {state}: {json.dumps(task['status'])}")
    got = [p.get("text") for a in task["artifacts"] for p in a["parts"]]
    if args.expect not in got:
        fail("delegate_task", f"artifacts {got}, want {args.expect!r}")
    print(f"ok delegate_task {task['id']} completed", flush=True)

    again = await session.call_tool("get_task", {"id": task["id"]})
    if again.is_error or json.loads(text_of(again))["status"]["state"] != "completed":
        fail("get_task", text_of(again))
    print("ok get_task", flush=True)

    # Canceling a task that ended changes nothing: the task comes back as it is.
    canceled = await session.call_tool("cancel_task", {"id": task["id"]})
    if canceled.is_error or json.loads(text_of(canceled))["status"]["state"] != "completed":
        fail("cancel_task", text_of(canceled))
    print("ok cancel_task", flush=True)

    found = await session.call_tool("find_agents", {"skill": args.skill})
    if found.is_error or args.worker_uid not in [a["uid"] for a in json.loads(text_of(found))]:
        fail("find_agents", text_of(found))
    known = await session.call_tool("list_agents", {})
    if known.is_error or args.worker_uid not in text_of(known):
        fail("list_agents", text_of(known))
    print("ok find_agents, list_agents", flush=True)

    sent = await session.call_tool("send_message", {"to": args.to, "text": "hi from mcp"})
    if sent.is_error:
        fail("send_message", text_of(sent))
    read = await session.call_tool("read_messages", {"contact": args.to, "limit": 5})
    if read.is_error or "hi from mcp" not in [m.get("text") for m in json.loads(text_of(read))]:
        fail("read_messages", text_of(read))
    bad = await session.call_tool("read_messages", {"contact": args.to, "limit": 0})
    if not bad.is_error:
        fail("read_messages", f"limit 0 answered {bad}")
    print("ok send_message, read_messages", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rhizo", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--worker-uid", required=True)
    parser.add_argument("--skill", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--wait-seconds", type=int, default=90)
    sys.exit(anyio.run(main, parser.parse_args()))
