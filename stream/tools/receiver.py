"""A local receiver for the demo and for trying destinations out: prints what a person would see.

``/webhook`` verifies the Standard Webhooks signature with the ``standardwebhooks``
package (an implementation independent of the notifier's); ``/slack`` and ``/teams``
print the message's summary as the chat client would show it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable

import orjson
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


class LocalReceiver:
    """An HTTP server on loopback in a thread of its own; ``show(line)`` gets one line per message."""

    def __init__(self, port: int, secret: str, show: Callable[[str, str], None]) -> None:
        self.port = port
        self.webhook = Webhook(secret)
        self.show = show
        self.counts: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="local-receiver", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.thread.start()
        if not self.started.wait(10):
            raise RuntimeError("the local receiver did not start")

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self.webhook.verify(body, dict(request.headers), json_parse=False)
        except WebhookVerificationError:
            self.counts["webhook_bad_signature"] += 1
            return web.Response(status=400, text="bad signature")
        self.counts["webhook_verified"] += 1
        return web.Response(status=204)

    async def _chat(self, request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read())
        kind = request.path.strip("/")
        self.counts[kind] += 1
        if kind == "slack":
            self.show(kind, str(doc.get("text", "")))
        else:
            card = doc["attachments"][0]["content"]
            self.show(kind, " ".join(b.get("text", "") for b in card["body"][:2]))
        return web.Response(text="ok")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/webhook", self._webhook)
        app.router.add_post("/slack", self._chat)
        app.router.add_post("/teams", self._chat)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.started.set()
        self.loop.run_forever()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
