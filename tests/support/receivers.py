"""Real receivers on loopback for the notification tests: HTTP (webhooks, Slack, Teams) and SMTP.

The HTTP receiver verifies every Standard Webhooks signature with the ``standardwebhooks``
package, an implementation independent of the notifier's, and answers what a test plans
per path (status, Retry-After, a delay); the SMTP receiver is aiosmtpd with STARTTLS and
AUTH, its mails parsed with the standard ``email`` package.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from stream.tools.brokers import free_port


@dataclass
class Answer:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: str = "ok"


@dataclass
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int
    verified: list[bool]  # per secret the receiver knows: did the signature verify with it?

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class HttpReceiver:
    """An aiohttp server in a thread of its own."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self.secrets = secrets or []
        self.port = free_port()
        self.requests: list[Received] = []
        self.plans: dict[str, deque[Answer]] = defaultdict(deque)
        self.defaults: dict[str, Answer] = {}
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(10), "the HTTP receiver did not start"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, path: str, *answers: Answer, then: Answer | None = None) -> None:
        """Answer the next requests to ``path`` with ``answers``, then with ``then`` (default 200)."""
        with self.lock:
            self.plans[path].extend(answers)
            if then is not None:
                self.defaults[path] = then

    def received(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait(
        self, path: str, count: int, timeout_s: float = 60.0, status: int | None = None
    ) -> list[Received]:
        """Wait for ``count`` requests to ``path`` (answered ``status``, when given)."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = [r for r in self.received(path) if status is None or r.status == status]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {len(got)} of {count} requests after {timeout_s} s")
            time.sleep(0.1)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                verified.append(True)
            except WebhookVerificationError:
                verified.append(False)
        with self.lock:
            plan = self.plans[request.path]
            answer = plan.popleft() if plan else self.defaults.get(request.path, Answer())
            self.requests.append(Received(request.path, headers, body, time.time(), answer.status, verified))
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.runner = runner
        self.started.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """aiosmtpd on loopback with STARTTLS (a throwaway CA's certificate) and AUTH required."""

    def __init__(self, user: str, password: str, ca: Any) -> None:
        self.mailbox = _Mailbox()
        self.port = free_port()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and data.login == user.encode()
                and data.password == password.encode()
            )
            return AuthResult(success=ok, handled=False)

        self.controller = Controller(
            self.mailbox,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            authenticator=authenticate,
            auth_required=True,
        )
        self.controller.start()

    @property
    def messages(self) -> list[EmailMessage]:
        with self.mailbox.lock:
            return list(self.mailbox.messages)

    def wait(self, count: int, timeout_s: float = 60.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"SMTP: {len(self.messages)} of {count} mails after {timeout_s} s")
            time.sleep(0.1)
        return self.messages

    def close(self) -> None:
        self.controller.stop()
