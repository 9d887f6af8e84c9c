"""Who may use the inbox, and which queues each sees.

A users file (``SURVEY_ALERTS_INBOX_USERS``, TOML or YAML)::

    [users.sam]
    name = "Sam Lee"
    password_hash = "$argon2id$v=19$m=65536,t=3,p=4$..."   # survey-alerts inbox hash-password
    queues = ["billing", "billing-lead"]                   # "*": every queue

    [tokens.crm]                                           # for the JSON API
    token_sha256 = "9f86d081..."                           # survey-alerts inbox hash-token
    queues = ["*"]

Passwords are kept only as argon2 hashes, API tokens only as SHA-256 digests. With
``SURVEY_ALERTS_INBOX_TRUSTED_HEADER`` set, a request from one of the trusted proxies
(``SURVEY_ALERTS_INBOX_TRUSTED_PROXIES``) is the user that header names (single
sign-on in front of the inbox); that user must still be in the file, for its queues.
Sessions are server-side (a random id in an HttpOnly, SameSite=Strict cookie), each
with its own CSRF token that every form must send back. They are kept in the inbox's
database (only a digest of the id): a restart keeps everyone logged in, several inbox
processes on one database share them, and a logout ends the session in all of them. A
session is its user's for as long as the users file has that user: their queues are read
from the file on every request, and a user taken out of the file is logged out.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stream.errors import ConfigurationError

SESSION_S = 12 * 3600.0
log = logging.getLogger(__name__)
MAX_FAILURES = 5  # failed logins of one user name from one client address ...
LOCK_S = 60.0  # ... lock that name for that address this long
MAX_ADDRESS_FAILURES = 20  # failed logins from one address, whatever the names, lock the address
_HASHER = PasswordHasher()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserEntry(_Strict):
    name: str | None = None
    password_hash: str | None = None
    queues: Annotated[list[str], Field(min_length=1)]
    timezone: str | None = None  # an IANA zone ("Europe/Berlin"): times on the pages; else the browser's

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"timezone {value[:64]!r} is not an IANA time zone (e.g. Europe/Berlin)"
                ) from None
        return value

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("$argon2"):
            raise ValueError("password_hash must be an argon2 hash (survey-alerts inbox hash-password)")
        return value


class TokenEntry(_Strict):
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    queues: Annotated[list[str], Field(min_length=1)]
    actor: str | None = None


class UsersFile(_Strict):
    users: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._@-]{1,128}$")], UserEntry] = {}
    tokens: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")], TokenEntry] = {}


@dataclass(frozen=True)
class Principal:
    """Who is asking, and which queues they see (None: every queue)."""

    user: str
    display: str
    queues: frozenset[str] | None
    timezone: str | None = None

    def sees(self, queue: str | None) -> bool:
        return self.queues is None or (queue is not None and queue in self.queues)


def _queues(names: list[str]) -> frozenset[str] | None:
    return None if "*" in names else frozenset(names)


def load_users(path: str | Path) -> UsersFile:
    """Read and check a users file; errors name the file and the entry, never a hash."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        doc = tomllib.loads(text) if p.suffix == ".toml" else (yaml.safe_load(text) or {})
    except OSError as exc:
        raise ConfigurationError(f"{p}: cannot read the inbox users file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{p}: not valid {p.suffix[1:].upper() or 'YAML'}: {exc}") from None
    try:
        return UsersFile.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"{p}: {problems}") from None


def hash_password(password: str) -> str:
    """An argon2id hash for the users file."""
    return _HASHER.hash(password)


def hash_token(token: str) -> str:
    """The SHA-256 digest of an API token, for the users file."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    principal: Principal
    csrf: str
    expires_at: float


class SessionStore(Protocol):
    """Where sessions live, by the digest of their id (the inbox's database; a dict in tests)."""

    async def save_session(self, digest: str, user: str, csrf: str, expires_at: float) -> None: ...

    async def load_session(self, digest: str) -> tuple[str, str, float] | None: ...

    async def drop_session(self, digest: str) -> None: ...

    async def record_failure(self, key: str, at: float) -> None: ...

    async def count_failures(self, key: str, since: float) -> int: ...


class MemorySessions:
    """A ``SessionStore`` in this process only (a restart logs everyone out)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str, float]] = {}
        self.failures: dict[str, list[float]] = {}

    async def save_session(self, digest: str, user: str, csrf: str, expires_at: float) -> None:
        self.rows[digest] = (user, csrf, expires_at)

    async def load_session(self, digest: str) -> tuple[str, str, float] | None:
        return self.rows.get(digest)

    async def drop_session(self, digest: str) -> None:
        self.rows.pop(digest, None)

    async def record_failure(self, key: str, at: float) -> None:
        self.failures.setdefault(key, []).append(at)

    async def count_failures(self, key: str, since: float) -> int:
        recent = [t for t in self.failures.get(key, []) if t >= since]
        self.failures[key] = recent
        return len(recent)


def session_digest(sid: str) -> str:
    """What is stored of a session id: a leaked table does not give anyone a session."""
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass
class Authority:
    """Checks passwords, tokens and trusted headers; opens, finds and closes sessions."""

    users: UsersFile
    trusted_header: str | None = None
    trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    sessions: SessionStore = field(default_factory=MemorySessions)
    clock: Any = time.time
    users_file: Path | None = None  # re-read when it changes: removing a user or token takes effect
    _stamp: tuple[int, int] | None = None

    def refresh(self) -> None:
        """Re-read the users file if it changed since it was read (one ``stat`` per request).

        A file that no longer loads keeps the users read before, with an ERROR line: a typo must
        not lock everyone out, and the operator sees why a change did not take effect.
        """
        if self.users_file is None:
            return
        try:
            st = self.users_file.stat()
        except OSError as exc:
            log.error(
                "Inbox users file %s: cannot read it (%s); keeping the users read before",
                self.users_file,
                exc.strerror,
            )
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self.users = load_users(self.users_file)
        except ConfigurationError as exc:
            log.error("Inbox users file changed but does not load (%s); keeping the users read before", exc)
            return
        log.info(
            "Inbox users file re-read: %d users, %d tokens", len(self.users.users), len(self.users.tokens)
        )

    def principal(self, user: str) -> Principal | None:
        entry = self.users.users.get(user)
        if entry is None:
            return None
        return Principal(user, entry.name or user, _queues(entry.queues), entry.timezone)

    def display_name(self, actor: str | None) -> str | None:
        """The name the users file gives an actor (a login name), else the actor as recorded."""
        entry = self.users.users.get(actor or "")
        return entry.name if entry is not None and entry.name else actor

    async def locked(self, user: str, address: str | None = None) -> bool:
        """Too many recent failures for this name from this address, or from this address at all.

        By name and address, so that guessing a colleague's password from one place does not lock
        the colleague out everywhere; by address too, so that trying many names is throttled. The
        failures are kept in the session store (the inbox's database), so every inbox process on
        one database counts the same ones.
        """
        since = self.clock() - LOCK_S
        return (
            await self.sessions.count_failures(_name_key(user, address), since) >= MAX_FAILURES
            or await self.sessions.count_failures(_address_key(address), since) >= MAX_ADDRESS_FAILURES
        )

    async def failed(self, user: str, address: str | None = None) -> None:
        """Count a failed login of ``user`` from ``address``."""
        now = self.clock()
        await self.sessions.record_failure(_name_key(user, address), now)
        await self.sessions.record_failure(_address_key(address), now)

    async def log_in(self, user: str, password: str, address: str | None = None) -> Principal | None:
        """The user, if not locked out and the password is theirs; a failure is counted."""
        if await self.locked(user, address):
            return None
        loop = asyncio.get_running_loop()
        principal = await loop.run_in_executor(None, self.check_password, user, password)
        if principal is None:
            await self.failed(user, address)
        return principal

    def check_password(self, user: str, password: str) -> Principal | None:
        """The user, if the password is theirs (slow on purpose: argon2; no lockout: ``log_in``)."""
        entry = self.users.users.get(user)
        stored = entry.password_hash if entry else None
        try:
            # a made-up hash for unknown users: the answer takes as long either way
            _HASHER.verify(stored or _DUMMY, password)
            ok = stored is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            return None
        return self.principal(user)

    def check_token(self, token: str) -> Principal | None:
        digest = hash_token(token)
        for name, entry in self.users.tokens.items():
            if hmac.compare_digest(digest, entry.token_sha256):
                return Principal(entry.actor or f"token:{name}", entry.actor or name, _queues(entry.queues))
        return None

    def from_proxy(self, headers: Any, remote: str | None) -> Principal | None:
        if not self.trusted_header or remote not in self.trusted_proxies:
            return None
        user = headers.get(self.trusted_header)
        return self.principal(user) if user else None

    async def open_session(self, principal: Principal) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), self.clock() + SESSION_S)
        await self.sessions.save_session(
            session_digest(sid), principal.user, session.csrf, session.expires_at
        )
        return sid, session

    async def session(self, sid: str | None) -> Session | None:
        """The live session of a cookie's id, with its user's queues as the users file says now."""
        if not sid or len(sid) > 128:
            return None
        digest = session_digest(sid)
        row = await self.sessions.load_session(digest)
        if row is None:
            return None
        user, csrf, expires_at = row
        principal = self.principal(user)
        if principal is None or expires_at < self.clock():  # expired, or no longer in the users file
            await self.sessions.drop_session(digest)
            return None
        return Session(principal, csrf, expires_at)

    async def close_session(self, sid: str | None) -> None:
        if sid and len(sid) <= 128:
            await self.sessions.drop_session(session_digest(sid))


_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))


def _name_key(user: str, address: str | None) -> str:
    # digests: neither a name tried (it may be a password typed in the wrong box) nor an address is stored
    return "name:" + hashlib.sha256(f"{address}\0{user}".encode()).hexdigest()


def _address_key(address: str | None) -> str:
    return "address:" + hashlib.sha256(str(address).encode()).hexdigest()
