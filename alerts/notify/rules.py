"""Destinations and the rules that pick them, as written in the routing rules file.

A rules file may add::

    [destinations.billing-slack]
    kind = "slack"                     # webhook, slack, teams, email, console
    url_env = "SLACK_BILLING_URL"      # secrets only from the environment or a file

    [destinations.crm]
    kind = "webhook"
    url = "https://crm.example.com/hooks/survey-alerts"
    secrets_env = "CRM_WEBHOOK_SECRETS"   # "whsec_... whsec_...": several while rotating
    types = ["recovery_alert", "escalation", "followup_event"]

    [[notify]]
    name = "key-accounts"
    destinations = ["billing-slack", "crm"]
    match = { severity = "critical", queue = ["billing", "billing-lead"] }

    notify_default = ["crm"]

    [destinations.billing-digest]
    kind = "slack"
    url_env = "SLACK_BILLING_DIGEST_URL"
    group_s = 60                       # one message per queue and minute, listing its alerts

Every rule whose named fields all match adds its destinations (``stop = true`` ends
the search at that rule); a message no rule matches goes to ``notify_default``. A
destination receives only the message ``types`` it lists (by default recovery alerts,
escalations and ops alerts: overdue notices are recovery alerts of kind
``followup_overdue``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MessageType = Literal["recovery_alert", "escalation", "ops_alert", "followup_event"]
MESSAGE_TYPES: tuple[MessageType, ...] = ("recovery_alert", "escalation", "ops_alert", "followup_event")
DEFAULT_TYPES: tuple[MessageType, ...] = ("recovery_alert", "escalation", "ops_alert")
Kind = Literal["webhook", "slack", "teams", "email", "console"]
MATCH_FIELDS = ("type", "queue", "kind", "severity", "priority", "team", "source")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Sensible rates per kind: Slack allows about one message per second per webhook.
DEFAULT_RATE = {"webhook": 50.0, "slack": 1.0, "teams": 1.0, "email": 5.0, "console": 1000.0}
GROUPED_TYPES: tuple[MessageType, ...] = ("recovery_alert", "escalation")  # ops alerts: always at once
MAX_GROUP = 25  # documents in one grouped message (more: several messages)
DEFAULT_CONCURRENCY = {"webhook": 4, "slack": 1, "teams": 1, "email": 2, "console": 1}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


OneOrMany = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class Destination(_Strict):
    """Where messages go: a kind, its address, and how fast and how often it may be tried."""

    kind: Kind
    url: str | None = Field(None, description="Address, when it is no secret (an internal webhook).")
    url_env: str | None = Field(None, description="Environment variable holding the address.")
    url_file: str | None = Field(None, description="File holding the address.")
    secrets_env: str | None = Field(
        None, description="Webhook: signing secrets (whsec_...), space-separated."
    )
    secrets_file: str | None = None
    unsigned: bool = Field(
        False,
        description="Webhook: no signatures, on purpose (its receiver cannot tell forged requests).",
    )
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    sender: str | None = Field(None, description="E-mail: the From address.")
    to: list[str] = []
    ca_file: str | None = Field(None, description="CA bundle to trust for TLS (default: the system's).")
    types: list[MessageType] = list(DEFAULT_TYPES)
    rate_per_s: float | None = Field(None, gt=0, description="Most messages per second.")
    concurrency: int | None = Field(None, ge=1, le=64)
    timeout_s: float = Field(15.0, gt=0, le=120)
    group_s: float = Field(
        0,
        ge=0,
        le=3600,
        description="Slack, Teams, e-mail, console: gather the alerts (and escalations) of one queue "
        "for this many seconds into one message (0: a message each).",
    )

    include_contact: bool = Field(
        False,
        description="Slack, Teams, e-mail, console: show whom to call (the CRM profile's name, company, "
        "phone, e-mail, preferred channel) in alerts and escalations. Personal data: off by default.",
    )

    _lists = field_validator("to", "types", mode="before")(classmethod(lambda cls, v: _as_list(v)))

    @model_validator(mode="after")
    def _complete(self) -> Destination:
        urls = [x for x in (self.url, self.url_env, self.url_file) if x]
        if self.kind in ("webhook", "slack", "teams"):
            if len(urls) != 1:
                raise ValueError(f"a {self.kind} destination needs exactly one of url, url_env, url_file")
            if self.url is not None and not self.url.startswith(("http://", "https://")):
                raise ValueError("url must start with http:// or https://")
            if self.kind != "webhook" and self.url is not None:
                raise ValueError(f"a {self.kind} webhook URL is a secret: give it as url_env or url_file")
        elif urls:
            raise ValueError(f"a {self.kind} destination takes no url")
        if self.kind == "email":
            missing = [n for n in ("smtp_host", "sender") if getattr(self, n) is None]
            if not self.to:
                missing.append("to")
            if missing:
                raise ValueError(f"an email destination needs {', '.join(missing)}")
            if self.password_env and self.password_file:
                raise ValueError("give the SMTP password as password_env or password_file, not both")
            if (self.password_env or self.password_file) and not self.username:
                raise ValueError("an SMTP password needs a username")
        if self.secrets_env and self.secrets_file:
            raise ValueError("give signing secrets as secrets_env or secrets_file, not both")
        if (self.secrets_env or self.secrets_file) and self.kind != "webhook":
            raise ValueError("signing secrets are for webhook destinations")
        signed = bool(self.secrets_env or self.secrets_file)
        if self.kind == "webhook" and not signed and not self.unsigned:
            raise ValueError(
                "a webhook destination signs its requests: give secrets_env or secrets_file, or say"
                " unsigned = true if its receiver checks nothing"
            )
        if self.include_contact and self.kind == "webhook":
            raise ValueError(
                "include_contact is for people's channels (slack, teams, email, console): a webhook "
                "gets the whole document"
            )
        if self.unsigned and (self.kind != "webhook" or signed):
            raise ValueError("unsigned = true is for a webhook destination without signing secrets")
        if self.group_s and self.kind == "webhook":
            raise ValueError(
                "group_s is for people's channels (slack, teams, email, console): a webhook gets each "
                "document with its own webhook-id"
            )
        return self

    @property
    def rate(self) -> float:
        """Messages per second it is sent at most."""
        return self.rate_per_s or DEFAULT_RATE[self.kind]

    @property
    def parallel(self) -> int:
        """Deliveries to it at once."""
        return self.concurrency or DEFAULT_CONCURRENCY[self.kind]


class NotifyMatch(_Strict):
    """What a message must have for a notify rule to apply (all named fields must match)."""

    type: list[MessageType] | None = None
    queue: OneOrMany | None = None
    kind: OneOrMany | None = None
    severity: OneOrMany | None = None
    priority: OneOrMany | None = None
    team: OneOrMany | None = None
    source: OneOrMany | None = None

    _lists = field_validator(*MATCH_FIELDS, mode="before")(classmethod(lambda cls, v: _as_list(v)))


class NotifyRule(_Strict):
    """Send messages that match to these destinations."""

    name: Annotated[str, Field(min_length=1)]
    destinations: Annotated[list[str], Field(min_length=1)]
    match: NotifyMatch = NotifyMatch()
    stop: bool = False

    _lists = field_validator("destinations", mode="before")(classmethod(lambda cls, v: _as_list(v)))


class Notifications(_Strict):
    """The destinations and notify rules of a rules file."""

    destinations: dict[Annotated[str, Field(pattern=_NAME)], Destination] = {}
    notify: list[NotifyRule] = []
    notify_default: list[str] = []

    _lists = field_validator("notify_default", mode="before")(classmethod(lambda cls, v: _as_list(v)))

    @model_validator(mode="after")
    def _known(self) -> Notifications:
        names = set(self.destinations)
        seen: set[str] = set()
        for rule in self.notify:
            if rule.name in seen:
                raise ValueError(f"notify rule name {rule.name!r} is used twice")
            seen.add(rule.name)
            unknown = [d for d in rule.destinations if d not in names]
            if unknown:
                raise ValueError(f"notify rule {rule.name!r} names unknown destinations {unknown}")
        unknown = [d for d in self.notify_default if d not in names]
        if unknown:
            raise ValueError(f"notify_default names unknown destinations {unknown}")
        return self

    def route(self, facts: dict[str, Any]) -> list[str]:
        """The destinations a message with ``facts`` goes to, each once, in rule order.

        ``facts`` has ``type`` and whatever of queue, kind, severity, priority, team and
        source the message carries (``facts_of``). A destination that does not take the
        message's type is left out.
        """
        chosen: list[str] = []
        matched = False
        for rule in self.notify:
            if _matches(rule.match, facts):
                matched = True
                chosen.extend(d for d in rule.destinations if d not in chosen)
                if rule.stop:
                    break
        if not matched:
            chosen = list(self.notify_default)
        return [d for d in chosen if facts.get("type") in self.destinations[d].types]


def _matches(m: NotifyMatch, facts: dict[str, Any]) -> bool:
    for name in MATCH_FIELDS:
        wanted = getattr(m, name)
        if wanted is not None:
            value = facts.get(name)
            if value is None or str(value) not in wanted:
                return False
    return True


def facts_of(message_type: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What notify rules match on, from an output document of ``message_type``."""
    return {
        "type": message_type,
        "queue": doc.get("queue"),
        "kind": doc.get("kind") if message_type != "followup_event" else doc.get("type"),
        "severity": doc.get("severity"),
        "priority": doc.get("priority"),
        "team": doc.get("team"),
        "source": doc.get("source"),
    }
