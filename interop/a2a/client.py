"""An ordinary A2A client written with the official a2a-sdk (client side), for rhizo's interop
test: it talks to a remote rhizo agent through the local API's A2A binding.

    python client.py --url http://127.0.0.1:PORT/a2a/<UID> --token TOKEN

1. resolves the agent card at <url>/.well-known/agent-card.json (bearer token),
2. SendStreamingMessage "hello rhizo": prints every update as a JSON line and checks they
   arrive in order (the task first, states never going back, `completed` last) with the
   upper-cased artifact,
3. GetTask and ListTasks of that task,
4. SendStreamingMessage "slow …", then CancelTask once it is working: the stream ends
   `canceled`,
5. SendStreamingMessage with a file: a raw part of FILE_BYTES bytes (over rhizo's inline limit)
   named data.bin; the task's request names it as a url part `urn:rhizo:file:HASH` with that
   name (the node stored it and sent it to the agent as a file message). Prints `FILE <HASH>`.

Prints `OK` and exits 0 when every check held; otherwise exits 1 naming the failed check.
"""

import argparse
import asyncio
import json
import sys

import httpx
from google.protobuf.json_format import MessageToDict

from a2a.client import ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, new_text_message
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)

TIMEOUT = 120.0
# The file of step 5: 100,000 bytes (rhizo carries at most 48 KiB inline), i*7+3 mod 251; the
# Rust side of the test checks the worker node's copy against the same bytes.
FILE_BYTES = 100_000
FILE_URL_PREFIX = 'urn:rhizo:file:'


def file_content() -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(FILE_BYTES))
TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}
ORDER = {
    TaskState.TASK_STATE_SUBMITTED: 0,
    TaskState.TASK_STATE_WORKING: 1,
    TaskState.TASK_STATE_COMPLETED: 2,
}


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f'FAILED: {what}', flush=True)
        sys.exit(1)


def show(label: str, message) -> None:
    print(json.dumps({label: MessageToDict(message)}), flush=True)


def state_of(event):
    if event.HasField('task'):
        return event.task.status.state
    if event.HasField('status_update'):
        return event.status_update.status.state
    return None


async def echo(client) -> str:
    """Streams one task to completion; returns its id."""
    request = SendMessageRequest(message=new_text_message('hello rhizo', role=Role.ROLE_USER))
    events = []
    async for event in client.send_message(request):
        show('event', event)
        events.append(event)
    check(len(events) >= 2, 'at least a task snapshot and a final status arrive')
    check(events[0].HasField('task'), 'the first streamed event is the Task')
    task_id = events[0].task.id
    rank = -1
    artifacts = []
    for e in events:
        s = state_of(e)
        if s is not None:
            check(s in ORDER, f'only submitted/working/completed states (got {TaskState.Name(s)})')
            check(ORDER[s] >= rank, 'states arrive in order')
            rank = ORDER[s]
        if e.HasField('artifact_update'):
            check(e.artifact_update.task_id == task_id, 'artifact of this task')
            artifacts.append(get_artifact_text(e.artifact_update.artifact))
        if e.HasField('status_update'):
            check(e.status_update.task_id == task_id, 'status of this task')
    check(state_of(events[-1]) == TaskState.TASK_STATE_COMPLETED, 'the stream ends completed')
    check('HELLO RHIZO' in artifacts, f'the artifact says HELLO RHIZO (got {artifacts})')
    return task_id


async def get_and_list(client, task_id: str) -> None:
    task = await client.get_task(GetTaskRequest(id=task_id))
    show('get_task', task)
    check(task.id == task_id, 'GetTask returns the task')
    check(task.status.state == TaskState.TASK_STATE_COMPLETED, 'GetTask: completed')
    texts = [get_artifact_text(a) for a in task.artifacts]
    check('HELLO RHIZO' in texts, f'GetTask carries the artifact (got {texts})')
    listed = await client.list_tasks(ListTasksRequest())
    print(json.dumps({'list_tasks': [t.id for t in listed.tasks]}), flush=True)
    check(any(t.id == task_id for t in listed.tasks), 'ListTasks lists the task')


async def cancel(client) -> None:
    request = SendMessageRequest(message=new_text_message('slow one', role=Role.ROLE_USER))
    task_id = None
    canceled = False
    last = None
    async for event in client.send_message(request):
        show('event', event)
        if event.HasField('task') and task_id is None:
            task_id = event.task.id
        state = state_of(event)
        if state is not None:
            last = state
        if state == TaskState.TASK_STATE_WORKING and not canceled:
            check(task_id is not None, 'a task id before working')
            answer = await client.cancel_task(CancelTaskRequest(id=task_id))
            show('cancel_task', answer)
            check(answer.id == task_id, 'CancelTask returns the task')
            canceled = True
    check(canceled, 'the slow task reached working')
    check(last == TaskState.TASK_STATE_CANCELED, 'the slow task ends canceled')
    task = await client.get_task(GetTaskRequest(id=task_id))
    check(task.status.state == TaskState.TASK_STATE_CANCELED, 'GetTask: canceled')


async def send_file(client) -> None:
    message = new_text_message('a file for you', role=Role.ROLE_USER)
    message.parts.append(
        Part(raw=file_content(), filename='data.bin', media_type='application/octet-stream')
    )
    task_id = None
    last = None
    async for event in client.send_message(SendMessageRequest(message=message)):
        if event.HasField('task') and task_id is None:
            task_id = event.task.id
        state = state_of(event)
        if state is not None:
            last = state
    check(task_id is not None, 'the file task was made')
    check(last == TaskState.TASK_STATE_COMPLETED, 'the file task ends completed')
    task = await client.get_task(GetTaskRequest(id=task_id))
    show('file_task', task)
    urls = [p for m in task.history for p in m.parts if p.url.startswith(FILE_URL_PREFIX)]
    check(len(urls) == 1, f'the request names one rhizo file (got {len(urls)})')
    check(urls[0].filename == 'data.bin', f'with its name (got {urls[0].filename!r})')
    digest = urls[0].url[len(FILE_URL_PREFIX):]
    check(len(digest) == 64, 'by its 64-hex-digit content hash')
    print(f'FILE {digest}', flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--url', required=True)
    parser.add_argument('--token', required=True)
    args = parser.parse_args()
    http = httpx.AsyncClient(
        headers={'Authorization': f'Bearer {args.token}'}, timeout=TIMEOUT
    )
    factory = ClientFactory(ClientConfig(httpx_client=http, streaming=True))
    client = await factory.create_from_url(args.url)
    task_id = await asyncio.wait_for(echo(client), TIMEOUT)
    await asyncio.wait_for(get_and_list(client, task_id), TIMEOUT)
    await asyncio.wait_for(cancel(client), TIMEOUT)
    await asyncio.wait_for(send_file(client), TIMEOUT)
    await http.aclose()
    print('OK', flush=True)


if __name__ == '__main__':
    asyncio.run(main())
