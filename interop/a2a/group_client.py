"""An ordinary A2A client (the official a2a-sdk) addressing a rhizo *group* as one agent, for
crates/rhizo/tests/agent_groups.rs:

    python group_client.py --url http://127.0.0.1:PORT/a2a/<GROUP NAME> --token TOKEN \
        --workers 2

1. resolves the group's agent card at <url>/.well-known/agent-card.json (named after the
   group; its skills gathered from the members' cards),
2. SendMessage "hello group" (metadata skill `upper`): one agent member runs it; GetTask shows
   it completed with the artifact HELLO GROUP,
3. SendMessage "all of you" (metadata skill `upper`, mode `all`): every agent member runs it;
   GetTask shows it completed with one ALL OF YOU artifact per worker.

Prints `OK` and exits 0 when every check held; otherwise exits 1 naming the failed check.
"""

import argparse
import asyncio
import json
import sys

import httpx
from google.protobuf.json_format import MessageToDict

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, new_text_message
from a2a.types import GetTaskRequest, Role, SendMessageRequest, TaskState

TIMEOUT = 120.0
TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f'FAILED: {what}', flush=True)
        sys.exit(1)


async def run_task(client, text: str, metadata: dict):
    """Sends one task and follows it to its end; the task as GetTask shows it then."""
    request = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
    request.metadata.update(metadata)
    task_id = None
    async for event in client.send_message(request):
        print(json.dumps({'event': MessageToDict(event)}), flush=True)
        if event.HasField('task') and task_id is None:
            task_id = event.task.id
        elif event.HasField('status_update') and task_id is None:
            task_id = event.status_update.task_id
    check(task_id is not None, f'{text!r}: a task id')
    while True:
        task = await client.get_task(GetTaskRequest(id=task_id))
        if task.status.state in TERMINAL:
            print(json.dumps({'get_task': MessageToDict(task)}), flush=True)
            return task
        await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--url', required=True)
    parser.add_argument('--token', required=True)
    parser.add_argument('--group', required=True)
    parser.add_argument('--workers', type=int, required=True)
    args = parser.parse_args()
    http = httpx.AsyncClient(
        headers={'Authorization': f'Bearer {args.token}'}, timeout=TIMEOUT
    )
    card = await A2ACardResolver(http, args.url).get_agent_card()
    print(json.dumps({'card': MessageToDict(card)}), flush=True)
    check(card.name == args.group, f'the card is named after the group (got {card.name!r})')
    factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
    client = factory.create(card)

    one = await asyncio.wait_for(run_task(client, 'hello group', {'skill': 'upper'}), TIMEOUT)
    check(one.status.state == TaskState.TASK_STATE_COMPLETED, 'any-of: completed')
    texts = [get_artifact_text(a) for a in one.artifacts]
    check(texts == ['HELLO GROUP'], f'any-of: one member ran it (got {texts})')

    every = await asyncio.wait_for(
        run_task(client, 'all of you', {'skill': 'upper', 'mode': 'all'}), TIMEOUT
    )
    check(every.status.state == TaskState.TASK_STATE_COMPLETED, 'all: completed')
    texts = [get_artifact_text(a) for a in every.artifacts]
    check(texts == ['ALL OF YOU'] * args.workers, f'all: one result per worker (got {texts})')
    ids = {a.artifact_id for a in every.artifacts}
    check(len(ids) == args.workers, f'all: each worker\'s artifact apart (got {ids})')
    await http.aclose()
    print('OK', flush=True)


if __name__ == '__main__':
    asyncio.run(main())
