"""One adapter per destination kind, behind one interface: ``await sender.send(delivery) -> Outcome``.

An adapter makes exactly one attempt and says how it went; retries, rate limits and
what happens next are the notifier's (``stream.notifier.service``). Secrets (webhook
URLs, signing secrets, SMTP passwords) come only from environment variables or files
the rules file names; they are held as ``SecretStr`` and never put in an outcome, a
log line or an error message (a URL is shown as its scheme and host at most).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiosmtplib
import click
import httpx
import orjson
from pydantic import SecretStr

from alerts.ids import stable_id
from alerts.notify.render import (
    View,
    console_text,
    email_message,
    envelope,
    group_view,
    slack_message,
    teams_message,
    view_of,
)
from alerts.notify.retry import Outcome, bounded, classify_http, classify_smtp
from alerts.notify.rules import Destination
from stream.errors import ConfigurationError

USER_AGENT = "survey-alerts-notifier/1"
# httpx logs every request's URL at INFO, and a Slack or Teams webhook URL is a secret
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass
class Delivery:
    """One document on its way to one destination."""

    id: str  # the webhook-id / Message-ID key: the same on every attempt
    type: str  # recovery_alert, escalation, ops_alert, followup_event
    doc: dict[str, Any]
    destination: str
    attempt: int = 0  # attempts made so far
    first_at: float = 0.0  # when it was first queued (epoch seconds)
    next_at: float = 0.0
    source: tuple[str, int] = ("", 0)  # the input topic-partition it came from
    created_at: float | None = None  # the document's own time, for the delivery latency


@dataclass
class Group:
    """Deliveries of one queue to one destination, sent as one message (its ``group_s``)."""

    type: str
    destination: str
    members: list[Delivery]

    @property
    def id(self) -> str:
        """The message's key (e-mail Message-ID): the same for the same members, in any order."""
        return stable_id("grp", *sorted(d.id for d in self.members))

    def view(self, inbox_url: str | None) -> View:
        return group_view(self.type, [d.doc for d in self.members], inbox_url)


class Sender(Protocol):
    """Delivers to one destination."""

    name: str
    kind: str

    async def send(self, delivery: Delivery) -> Outcome: ...

    async def send_group(self, group: Group) -> Outcome: ...

    async def close(self) -> None: ...


def shown(url: str) -> str:
    """A URL as it may be printed: scheme and host, never its path or query (they hold tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{':' + str(parts.port) if parts.port else ''}/…"


def read_secret(
    name: str, what: str, env: str | None, file: str | None, environ: Mapping[str, str]
) -> str | None:
    """A secret from the environment variable ``env`` or the file ``file``; errors name where, not what."""
    if env:
        value = environ.get(env)
        if not value:
            raise ConfigurationError(
                f"destination {name!r}: the environment variable {env} ({what}) is not set"
            )
        return value.strip()
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"destination {name!r}: cannot read {what} from {file}: {exc.strerror}"
            ) from None
        if not value:
            raise ConfigurationError(f"destination {name!r}: {file} ({what}) is empty")
        return value
    return None


def signing_keys(name: str, secrets: str) -> list[bytes]:
    """Standard Webhooks secrets (``whsec_<base64>``, space-separated) as HMAC keys."""
    keys = []
    for secret in secrets.split():
        body = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except ValueError:
            raise ConfigurationError(
                f"destination {name!r}: a signing secret is not whsec_ followed by base64"
            ) from None
        if not key:
            raise ConfigurationError(f"destination {name!r}: a signing secret is empty")
        keys.append(key)
    return keys


def signature(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys
    )


class _Http:
    """What the HTTP kinds share: one client, one POST, the answer classified."""

    kind = "webhook"

    def __init__(self, name: str, dest: Destination, url: str, inbox_url: str | None) -> None:
        self.name = name
        self.dest = dest
        self._url = SecretStr(url)
        self.inbox_url = inbox_url
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=dest.ca_file) if dest.ca_file else True
        )
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(dest.timeout_s), follow_redirects=False, verify=verify
        )

    @property
    def address(self) -> str:
        return shown(self._url.get_secret_value())

    def body(self, delivery: Delivery, now: float) -> tuple[bytes, dict[str, str]]:
        raise NotImplementedError

    def view_body(self, view: View) -> bytes:
        """A person's channel: the message of a view (Slack, Teams)."""
        raise NotImplementedError

    async def send(self, delivery: Delivery) -> Outcome:
        return await self._post(*self.body(delivery, time.time()))

    async def send_group(self, group: Group) -> Outcome:
        return await self._post(self.view_body(group.view(self.inbox_url)), {})

    async def _post(self, body: bytes, headers: dict[str, str]) -> Outcome:
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, **headers}
        try:
            response = await self.client.post(self._url.get_secret_value(), content=body, headers=headers)
        except httpx.TimeoutException:
            return Outcome("retry", detail=f"no answer within {self.dest.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Outcome("retry", detail=bounded(f"{type(exc).__name__}: cannot reach {self.address}"))
        return classify_http(
            response.status_code, response.headers.get("retry-after"), response.text[:2000], time.time()
        )

    async def close(self) -> None:
        await self.client.aclose()


class WebhookSender(_Http):
    """Standard Webhooks v1: ``{type, timestamp, data}`` signed with every active secret."""

    kind = "webhook"

    def __init__(
        self, name: str, dest: Destination, url: str, keys: list[bytes], inbox_url: str | None
    ) -> None:
        super().__init__(name, dest, url, inbox_url)
        self.keys = keys

    def body(self, delivery: Delivery, now: float) -> tuple[bytes, dict[str, str]]:
        stamp = int(now)
        body = orjson.dumps(envelope(delivery.type, delivery.doc, datetime.fromtimestamp(now, UTC)))
        headers = {"webhook-id": delivery.id, "webhook-timestamp": str(stamp)}
        if self.keys:
            headers["webhook-signature"] = signature(self.keys, delivery.id, stamp, body)
        return body, headers

    async def send_group(self, group: Group) -> Outcome:  # the rules file refuses group_s for webhooks
        return Outcome("rejected", detail="webhook deliveries are never grouped")


class SlackSender(_Http):
    """A Slack incoming webhook: Block Kit."""

    kind = "slack"

    def body(self, delivery: Delivery, now: float) -> tuple[bytes, dict[str, str]]:
        return self.view_body(
            view_of(delivery.type, delivery.doc, self.inbox_url, self.dest.include_contact)
        ), {}

    def view_body(self, view: View) -> bytes:
        return orjson.dumps(slack_message(view))


class TeamsSender(_Http):
    """A Microsoft Teams workflow webhook: an Adaptive Card."""

    kind = "teams"

    def body(self, delivery: Delivery, now: float) -> tuple[bytes, dict[str, str]]:
        return self.view_body(
            view_of(delivery.type, delivery.doc, self.inbox_url, self.dest.include_contact)
        ), {}

    def view_body(self, view: View) -> bytes:
        return orjson.dumps(teams_message(view))


class EmailSender:
    """SMTP with STARTTLS, implicit TLS or none, and optional authentication."""

    kind = "email"

    def __init__(
        self, name: str, dest: Destination, password: str | None, inbox_url: str | None, domain: str
    ) -> None:
        self.name = name
        self.dest = dest
        self._password = SecretStr(password) if password else None
        self.inbox_url = inbox_url
        self.domain = domain
        self.context = ssl.create_default_context(cafile=dest.ca_file) if dest.ca_file else None

    @property
    def address(self) -> str:
        return f"smtp://{self.dest.smtp_host}:{self.port}"

    @property
    def port(self) -> int:
        d = self.dest
        return d.smtp_port or {"tls": 465, "starttls": 587, "none": 25}[d.security]

    def message(self, delivery: Delivery) -> EmailMessage:
        view = view_of(delivery.type, delivery.doc, self.inbox_url, self.dest.include_contact)
        return self._message(view, delivery.id)

    def _message(self, view: View, key: str) -> EmailMessage:
        mail = email_message(view, key, self.name, self.domain)
        msg = EmailMessage()
        msg["From"] = str(self.dest.sender)
        msg["To"] = ", ".join(self.dest.to)
        msg["Subject"] = mail.subject
        msg["Message-ID"] = mail.message_id
        msg["Date"] = format_datetime(datetime.now(UTC))
        if mail.references:
            msg["In-Reply-To"] = mail.references
            msg["References"] = mail.references
        msg["X-Survey-Alerts-Delivery"] = key
        msg.set_content(mail.text)
        msg.add_alternative(mail.html, subtype="html")
        return msg

    async def send(self, delivery: Delivery) -> Outcome:
        return await self._send(self.message(delivery))

    async def send_group(self, group: Group) -> Outcome:
        return await self._send(self._message(group.view(self.inbox_url), group.id))

    async def _send(self, message: EmailMessage) -> Outcome:
        d = self.dest
        try:
            errors, reply = await aiosmtplib.send(
                message,
                hostname=d.smtp_host,
                port=self.port,
                use_tls=d.security == "tls",
                start_tls=d.security == "starttls",
                username=d.username,
                password=self._password.get_secret_value() if self._password else None,
                timeout=d.timeout_s,
                tls_context=self.context,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return classify_smtp(max(codes) if codes else 550, "every recipient was refused")
        except aiosmtplib.SMTPResponseException as exc:
            return classify_smtp(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Outcome("retry", detail=bounded(f"{type(exc).__name__}: cannot deliver to {self.address}"))
        if errors:
            return Outcome("rejected", detail=bounded(f"refused recipients: {len(errors)} of {len(d.to)}"))
        return Outcome("delivered", 250, detail=bounded(reply))

    async def close(self) -> None:
        return None


class ConsoleSender:
    """Prints what a person would read (the demo, and ``notify test`` without a receiver)."""

    kind = "console"
    address = "stdout"

    def __init__(self, name: str, inbox_url: str | None, contact: bool = False) -> None:
        self.name = name
        self.inbox_url = inbox_url
        self.contact = contact

    async def send(self, delivery: Delivery) -> Outcome:
        return self._print(view_of(delivery.type, delivery.doc, self.inbox_url, self.contact))

    async def send_group(self, group: Group) -> Outcome:
        view = group.view(self.inbox_url)
        return self._print(view, view.body)

    def _print(self, view: View, more: str | None = None) -> Outcome:
        text = console_text(view) + (f"\n{more}" if more else "")
        click.secho(f"[notify {self.name}] {text}", fg="magenta")
        return Outcome("delivered", detail="printed")

    async def close(self) -> None:
        return None


def build_senders(
    destinations: Mapping[str, Destination],
    inbox_url: str | None = None,
    email_domain: str = "survey-alerts.local",
    environ: Mapping[str, str] | None = None,
) -> dict[str, Sender]:
    """A sender per destination, with its secrets read now: a missing one is a clear error."""
    env = os.environ if environ is None else environ
    senders: dict[str, Sender] = {}
    for name, dest in destinations.items():
        if dest.kind == "console":
            senders[name] = ConsoleSender(name, inbox_url, dest.include_contact)
            continue
        if dest.kind == "email":
            password = read_secret(name, "the SMTP password", dest.password_env, dest.password_file, env)
            senders[name] = EmailSender(name, dest, password, inbox_url, email_domain)
            continue
        url = dest.url or read_secret(name, "the URL", dest.url_env, dest.url_file, env)
        assert url is not None
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"destination {name!r}: its URL must start with http:// or https://")
        if dest.kind == "webhook":
            secrets = read_secret(name, "the signing secrets", dest.secrets_env, dest.secrets_file, env)
            senders[name] = WebhookSender(name, dest, url, signing_keys(name, secrets or ""), inbox_url)
        elif dest.kind == "slack":
            senders[name] = SlackSender(name, dest, url, inbox_url)
        else:
            senders[name] = TeamsSender(name, dest, url, inbox_url)
    return senders


def fingerprint(sender: Sender) -> str:
    """Tells two configurations of one destination apart (a new URL re-enables a disabled one)."""
    secret = getattr(sender, "_url", None)
    text = secret.get_secret_value() if isinstance(secret, SecretStr) else getattr(sender, "address", "")
    return hashlib.sha256(f"{sender.kind}:{text}".encode()).hexdigest()[:16]
