"""Routing rules: ordered, first match wins, and a default queue so nothing is unrouted.

A rules file (TOML or YAML) looks like::

    default_queue = "triage"
    default_priority = "normal"

    [[rules]]
    name = "key-account-billing"
    queue = "billing-priority"      # may use {team}, {category}, {channel}
    priority = "urgent"
    owner = "billing-lead"          # optional
    [rules.match]
    category = ["billing", "refund"]
    customer_tier = ["gold", "platinum"]
    account_value = { min = 10000 }
    kind = ["detractor", "ticket_escalated"]

    [[playbook]]
    kind = "detractor"
    category = "delivery"           # optional: any category when absent
    first_tier = { action = "Apologise and credit", credit = 50, percent = 10 }
    second_tier = { action = "On push-back", credit = 70, percent = 20 }

Match fields: ``category``, ``team``, ``channel``, ``customer_tier``, ``priority``,
``kind`` (an alert kind, or the escalation source such as ``ticket_escalated``),
each a value or a list of values, and ``account_value`` with ``min`` and/or ``max``.
A field the event does not have never matches a rule that names it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.notify.rules import Notifications

Priority = Literal["low", "normal", "high", "urgent"]
_QUEUE = re.compile(r"^[A-Za-z0-9._{}-]+$")
FACTS = ("category", "team", "channel", "customer_tier", "priority", "kind")


class RulesError(ValueError):
    """A rules file that cannot work; the message names the file, the rule and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """An inclusive numeric range; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


OneOrMany = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class Match(_Strict):
    """What an event must have for a rule to apply (all named fields must match)."""

    category: OneOrMany | None = None
    team: OneOrMany | None = None
    channel: OneOrMany | None = None
    customer_tier: OneOrMany | None = None
    priority: OneOrMany | None = None
    kind: OneOrMany | None = None
    account_value: Range | None = None

    _lists = field_validator(*FACTS, mode="before")(classmethod(lambda cls, v: _as_list(v)))


class Rule(_Strict):
    """One routing rule."""

    name: Annotated[str, Field(min_length=1)]
    queue: Annotated[str, Field(min_length=1, max_length=200)]
    priority: Priority = "normal"
    owner: str | None = None
    match: Match = Match()

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        if not _QUEUE.match(value):
            raise ValueError(
                f"queue {value!r} may only use letters, digits, '.', '_', '-' and {{placeholders}}"
            )
        unknown = set(re.findall(r"{(\w*)}", value)) - {"team", "category", "channel"}
        if unknown:
            raise ValueError(f"queue {value!r} uses unknown placeholders {sorted(unknown)}")
        return value


class Tier(_Strict):
    """One tier of a recovery playbook: an action and a concession cap."""

    action: Annotated[str, Field(min_length=1)]
    credit: float | None = Field(None, ge=0)
    percent: float | None = Field(None, ge=0, le=100)


class Play(_Strict):
    """Suggested recovery for an alert kind (and optionally a contact driver)."""

    kind: str
    category: str | None = None
    first_tier: Tier
    second_tier: Tier | None = None


class RuleSet(Notifications):
    """A whole rules file: routing rules, the playbook, and where notifications go."""

    default_queue: Annotated[str, Field(min_length=1)] = "triage"
    default_priority: Priority = "normal"
    rules: list[Rule] = Field(default_factory=list)
    playbook: list[Play] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self


def load_rules(path: str | Path) -> RuleSet:
    """Read and check a TOML or YAML rules file; errors name the file, the rule and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{p}: cannot read the rules file: {exc.strerror}") from None
    try:
        if p.suffix == ".toml":
            doc = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            doc = yaml.safe_load(text) or {}
        else:
            raise RulesError(f"{p}: rules files end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise RulesError(f"{p}: not valid {p.suffix[1:].upper()}: {exc}") from None
    if isinstance(doc, dict) and "rules" not in doc:
        # a file of destinations (or a playbook) alone keeps the built-in routing, a queue per team;
        # `rules = []` says on purpose that everything goes to the default queue
        doc = {**doc, "rules": [rule.model_dump(exclude_defaults=True) for rule in DEFAULT_RULES.rules]}
    try:
        return RuleSet.model_validate(doc)
    except ValidationError as exc:
        raise RulesError(_explain_errors(p, doc, exc)) from None


_LABELS = {"rules": "rule", "playbook": "play", "notify": "notify rule"}


def _explain_errors(path: Path, doc: Any, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s)"]
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        where = ".".join(str(x) for x in loc) or "file"
        if len(loc) >= 2 and loc[0] in ("rules", "playbook", "notify") and isinstance(loc[1], int):
            items = doc.get(loc[0], []) if isinstance(doc, dict) else []
            name = (
                items[loc[1]].get("name") if loc[1] < len(items) and isinstance(items[loc[1]], dict) else None
            )
            label = f"{_LABELS[loc[0]]} #{loc[1] + 1}"
            if name:
                label += f" ({name!r})"
            field = ".".join(str(x) for x in loc[2:]) or "-"
            lines.append(f"  {label}, field {field}: {err['msg']}")
        else:
            lines.append(f"  field {where}: {err['msg']}")
    return "\n".join(lines)


def _fact_matches(rule_values: list[str] | None, value: Any) -> bool:
    return rule_values is None or (value is not None and str(value) in rule_values)


def matches(rule: Rule, facts: dict[str, Any]) -> bool:
    """Whether ``rule`` matches ``facts`` (``check`` without the explanations: the hot path)."""
    m = rule.match
    for name in FACTS:
        wanted = getattr(m, name)
        if wanted is not None:
            value = facts.get(name)
            if value is None or str(value) not in wanted:
                return False
    r = m.account_value
    if r is not None:
        value = facts.get("account_value")
        if value is None or (r.min is not None and value < r.min) or (r.max is not None and value > r.max):
            return False
    return True


def check(rule: Rule, facts: dict[str, Any]) -> list[str]:
    """Why ``rule`` does not match ``facts`` (empty when it matches)."""
    m = rule.match
    why = []
    for name in FACTS:
        wanted = getattr(m, name)
        if not _fact_matches(wanted, facts.get(name)):
            why.append(f"{name}={facts.get(name)!r} not in {wanted}")
    if m.account_value is not None:
        value = facts.get("account_value")
        r = m.account_value
        if value is None or (r.min is not None and value < r.min) or (r.max is not None and value > r.max):
            why.append(f"account_value={value!r} outside [{r.min}, {r.max}]")
    return why


_SAFE = re.compile(r"[^a-z0-9._-]+")


@lru_cache(maxsize=256)
def _placeholders(template: str) -> tuple[str, ...]:
    """The ``{name}`` placeholders of a queue template."""
    return tuple(re.findall(r"{(\w+)}", template))


# A queue becomes the topic ``<escalations prefix><queue>``, and Kafka allows 249 characters:
# 200 for the queue leaves 49 for the prefix (``Settings`` checks it).
MAX_QUEUE_LENGTH = 200
_HASH_CHARS = 16


def queue_token(text: str) -> str:
    """A Kafka-safe queue name: the same text always gives the same name.

    Lower case; every run of characters outside ``[a-z0-9._-]`` becomes one ``-``;
    leading and trailing ``-`` and ``.`` are dropped; nothing left is ``unknown``.
    A name longer than ``MAX_QUEUE_LENGTH`` keeps its first 183 characters and
    ends in ``-`` and 16 hex digits of the SHA-256 of the whole sanitized name, so
    two long teams that share a beginning still get two queues.
    """
    name = _SAFE.sub("-", text.strip().lower()).strip("-.") or "unknown"
    if len(name) <= MAX_QUEUE_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_CHARS]
    head = name[: MAX_QUEUE_LENGTH - _HASH_CHARS - 1].rstrip("-.")
    return f"{head}-{digest}"


class Router:
    """Routes events (alerts and escalations) to queues by a rule set."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules

    def route(self, facts: dict[str, Any]) -> tuple[str, str, str, str | None]:
        """``(rule name, queue, priority, owner)`` of the first matching rule, else the default."""
        for rule in self.rules.rules:
            if matches(rule, facts):
                queue = self._fill(rule.queue, facts)
                if queue is not None:
                    return rule.name, queue, rule.priority, rule.owner
        return "default", queue_token(self.rules.default_queue), self.rules.default_priority, None

    def _fill(self, template: str, facts: dict[str, Any]) -> str | None:
        names = _placeholders(template)
        if any(not facts.get(n) for n in names):
            return None  # a placeholder without a value: this rule cannot name a queue
        return queue_token(template.format(**{n: facts[n] for n in names}))

    def explain(self, facts: dict[str, Any]) -> list[str]:
        """One line per rule: matched or why not, then the decision."""
        lines = []
        decided = None
        for i, rule in enumerate(self.rules.rules, 1):
            why = check(rule, facts)
            if not why and self._fill(rule.queue, facts) is None:
                why = [f"queue {rule.queue!r} needs a value the event does not have"]
            mark = "MATCH" if not why and decided is None else ("match (shadowed)" if not why else "no")
            lines.append(f"{i}. {rule.name}: {mark}" + ("" if not why else " - " + "; ".join(why)))
            if not why and decided is None:
                decided = rule.name
        name, queue, priority, owner = self.route(facts)
        lines.append(f"=> rule {name!r}: queue {queue!r}, priority {priority!r}, owner {owner!r}")
        return lines

    def playbook(self, kind: str, category: str | None, base: float | None) -> dict[str, Any] | None:
        """The suggested recovery for an alert, with concession caps worked out when ``base`` is known."""
        plays = [p for p in self.rules.playbook if p.kind == kind and p.category in (category, None)]
        if not plays:
            return None
        play = sorted(plays, key=lambda p: p.category is None)[0]  # a category-specific play wins
        return {
            "first_tier": _tier(play.first_tier, base),
            "second_tier": _tier(play.second_tier, base) if play.second_tier else None,
        }


def _tier(tier: Tier, base: float | None) -> dict[str, Any]:
    """A playbook tier; the cap is the credit or the percentage of ``base``, whichever is less."""
    caps = [
        c
        for c in (tier.credit, tier.percent / 100 * base if tier.percent is not None and base else None)
        if c is not None
    ]
    return {
        "action": tier.action,
        "credit": tier.credit,
        "percent": tier.percent,
        "cap": round(min(caps), 2) if caps else None,
    }


DEFAULT_RULES = RuleSet(
    default_queue="triage",
    rules=[Rule(name="team-queue", queue="{team}")],
)
