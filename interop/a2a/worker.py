"""A tiny A2A agent written with the official a2a-sdk (server side), for rhizo's interop test.

It upper-cases the text it gets and streams `working` -> artifact -> `completed`. A text that
starts with `slow` works for up to a minute (so a test can cancel it) before it completes.

    python worker.py --port PORT      # serves JSON-RPC at http://127.0.0.1:PORT/
                                      # and the card at /.well-known/agent-card.json

It prints `READY <port>` on stdout once it listens (port 0 picks a free one).
"""

import argparse
import asyncio
import socket
import sys

import uvicorn
from starlette.applications import Starlette

from a2a.helpers import get_message_text, new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState

SLOW_SECONDS = 60


class UpperExecutor(AgentExecutor):
    """Upper-cases the request; `slow …` requests wait until canceled (or a minute)."""

    def __init__(self) -> None:
        self.canceled: set[str] = set()

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        if context.current_task is None and message is not None:
            await event_queue.enqueue_event(new_task_from_user_message(message))
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        text = get_message_text(message) if message is not None else ''
        await updater.start_work(updater.new_agent_message([new_text_part('working on it')]))
        if text.startswith('slow'):
            for _ in range(SLOW_SECONDS * 10):
                if context.task_id in self.canceled:
                    return
                await asyncio.sleep(0.1)
        await updater.add_artifact([new_text_part(text.upper())], name='upper')
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.canceled.add(context.task_id)
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


def card(port: int) -> AgentCard:
    return AgentCard(
        name='Upper',
        description='Upper-cases text (a2a-sdk interop worker)',
        version='1.0.0',
        supported_interfaces=[
            AgentInterface(
                url=f'http://127.0.0.1:{port}/',
                protocol_binding='JSONRPC',
                protocol_version='1.0',
            )
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=['text/plain'],
        default_output_modes=['text/plain'],
        skills=[
            AgentSkill(
                id='upper', name='Upper-case', description='Upper-cases text', tags=['text']
            )
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--port', type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', args.port))
    port = sock.getsockname()[1]
    agent_card = card(port)
    handler = DefaultRequestHandler(
        agent_executor=UpperExecutor(), task_store=InMemoryTaskStore(), agent_card=agent_card
    )
    app = Starlette(
        routes=create_agent_card_routes(agent_card) + create_jsonrpc_routes(handler, '/')
    )
    config = uvicorn.Config(app, log_level='warning')
    server = uvicorn.Server(config)
    print(f'READY {port}', flush=True)
    asyncio.run(server.serve(sockets=[sock]))
    sys.exit(0)


if __name__ == '__main__':
    main()
