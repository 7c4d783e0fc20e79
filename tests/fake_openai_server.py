"""A stand-in OpenAI-compatible streaming server for the serving tests, on 127.0.0.1 only.

It answers ``GET /v1/models`` and streams ``POST /v1/completions`` as server-sent events: after
``ttft_ms`` the first token, then one every ``itl_ms``, ``max_tokens`` in all (``short`` fewer),
then a usage chunk (unless ``no_usage``) and ``[DONE]``. ``hang`` never answers a completion.
Run as a script (``python tests/fake_openai_server.py PORT [--ttft-ms ...]``) to be killed by a test;
``--kill-self-after N --once FILE`` makes it SIGKILL itself just after answering its N-th completion,
unless FILE exists (it creates FILE first): a crash mid-level that does not race the machine's speed,
and that a server started again for the next level does not repeat.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
from dataclasses import dataclass

from aiohttp import web


@dataclass
class Behaviour:
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    short: int = 0  # tokens fewer than asked
    no_usage: bool = False
    hang: bool = False
    in_flight: int = 0  # completions being answered now, and the most at once (the client's concurrency)
    max_in_flight: int = 0
    received: int = 0
    answered: int = 0
    kill_self_after: int = 0  # 0: never
    once: str = ""  # the marker file that a self-kill creates, and that stops a later one
    models: tuple[str, ...] = ("fake",)  # what GET /v1/models lists
    strict_model: bool = False  # a completion for a model not listed: 404 with vLLM's message
    drop_nth: int = 0  # the n-th completion's connection is closed without an answer (a stale keep-alive); 0: none
    ttft_per_in_flight_ms: float = 0.0  # added to ttft_ms per completion in flight (itself included): load slows it


def app(b: Behaviour) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in b.models]})

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        b.received += 1
        if b.strict_model and body.get("model") not in b.models:
            return web.json_response({"error": {"message": f"The model `{body.get('model')}` does not exist. Valid "
                                                f"aliases: {', '.join(b.models)}.", "code": 404}}, status=404)
        if b.received == b.drop_nth:
            request.transport.close()  # the connection goes, nothing answered
            await asyncio.sleep(3600)
        if b.hang:
            await asyncio.sleep(3600)
        b.in_flight += 1
        b.max_in_flight = max(b.max_in_flight, b.in_flight)
        try:
            return await stream(request, body)
        finally:
            b.in_flight -= 1
            b.answered += 1
            if b.answered == b.kill_self_after and not os.path.exists(b.once):
                open(b.once, "w").close()
                # after aiohttp has ended this response, while the others are still in flight
                asyncio.get_running_loop().call_later(0.02, os.kill, os.getpid(), signal.SIGKILL)

    async def stream(request: web.Request, body: dict) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        n = int(body["max_tokens"]) - b.short
        first = b.ttft_ms + b.ttft_per_in_flight_ms * b.in_flight
        for i in range(n):
            await asyncio.sleep((first if i == 0 else b.itl_ms) / 1e3)
            chunk = {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": f" t{i}"}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if not b.no_usage:
            usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
            await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    application = web.Application()
    application.router.add_get("/v1/models", models)
    application.router.add_post("/v1/completions", completions)
    return application


class InThread:
    """``with InThread(Behaviour(...)) as url:`` the server in a daemon thread of this process."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.loop = asyncio.new_event_loop()
        self.url = ""

    def __enter__(self) -> str:
        started = threading.Event()

        async def serve() -> None:
            self.runner = web.AppRunner(app(self.behaviour), shutdown_timeout=1.0)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            started.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(serve()), self.loop.run_forever()),
                                       daemon=True)
        self.thread.start()
        started.wait(10)
        return self.url

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--kill-self-after", type=int, default=0)
    parser.add_argument("--once", default="")
    args = parser.parse_args()
    if args.kill_self_after and not args.once:
        parser.error("--kill-self-after needs --once FILE")
    behaviour = Behaviour(args.ttft_ms, args.itl_ms, kill_self_after=args.kill_self_after, once=args.once)
    print(f"stand-in started, pid {os.getpid()}", flush=True)  # one line per start in the started server's log
    web.run_app(app(behaviour), host="127.0.0.1", port=args.port, print=None)
