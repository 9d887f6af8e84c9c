"""Realistic synthetic survey responses and ticket events.

Customers have a stable tier and account value; each interaction is a ticket
(created, assigned, first response, replies, sometimes escalated or reopened,
resolved, closed) followed by a survey about it. About 20% of NPS answers are
detractors and some CES answers are 1-2. On request it mixes in edits (same
``response_id``, new scores), duplicate deliveries and malformed messages; with
``profiles`` it sends the customers' CRM profiles too (some customers have none, some
are erased, some updates arrive out of order), from a random stream of their own so the
surveys and tickets of a seed stay the same either way. Contacts carry a queue time
(``queue_seconds``, none when abandoned) and, in simulated time, some a conversation
(customer and agent replies), also from a stream of their own: Average Speed of Answer and
Average Reply Time have data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.common import format_timestamp, parse_timestamp

TEAMS = ["billing", "delivery", "accounts", "technical", "returns", "sales"]
CATEGORY_TEAM = {
    "billing": "billing",
    "refund": "billing",
    "delivery": "delivery",
    "damaged_item": "returns",
    "return": "returns",
    "login": "accounts",
    "password": "accounts",
    "bug": "technical",
    "outage": "technical",
    "upgrade": "sales",
}
CHANNELS = ["email", "chat", "phone", "sms", "social", "web", "in_person"]
CHANNEL_WEIGHTS = [30, 30, 20, 5, 5, 8, 2]
TIERS = ["standard", "silver", "gold", "platinum"]
TIER_WEIGHTS = [70, 18, 9, 3]
TOUCHPOINTS = ["case_closed", "help_center", "in_app", "relationship"]
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP"]
FIRST_NAMES = [
    "Ada",
    "Grace",
    "Linus",
    "Mei",
    "Omar",
    "Priya",
    "Sven",
    "Yuki",
    "Zoe",
    "Tomás",
    "Amara",
    "Jonas",
]
LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Okafor",
    "Nakamura",
    "Haddad",
    "Iyer",
    "Lindqvist",
    "García",
    "Novak",
    "Brown",
]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Stark Industries", "Wayne Enterprises", None]
MALFORMED_KINDS = [
    "not_json",
    "not_utf8",
    "nps_out_of_range",
    "missing_customer",
    "bad_timestamp",
    "wrong_type",
    "not_object",
    "no_scores",
]


@dataclass(frozen=True, slots=True)
class Message:
    """One message to produce: ``stream`` is ``"survey"``, ``"ticket"`` or ``"profile"``."""

    stream: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (a profile's erasure)
    note: str = ""  # "", "edit", "duplicate", "malformed:<kind>", or for profiles "stale", "deleted"


@dataclass(frozen=True)
class Mix:
    """How much of each kind of irregular traffic to mix in (fractions of messages)."""

    detractor_rate: float = 0.2
    low_effort_rate: float = 0.12
    edit_rate: float = 0.02
    duplicate_rate: float = 0.02
    malformed_rate: float = 0.0


class Generator:
    """A deterministic (seeded) stream of contract messages."""

    def __init__(
        self,
        seed: int = 1,
        customers: int = 1_000,
        mix: Mix | None = None,
        start: datetime | None = None,
        step_s: float = 0.5,
        live: bool = False,
        profiles: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.profiles = profiles
        self.prng = random.Random(seed * 7_919 + 1)  # profiles' own: the other messages do not change
        self.krng = random.Random(seed * 104_729 + 3)  # queue times and conversations: their own too
        self._profiled: set[str] = set()
        self._unknown: set[str] = set()  # customers the CRM does not know
        self.seed = seed
        self.customers = customers
        self.mix = mix or Mix()
        self.clock = start or datetime.now(UTC) - timedelta(hours=1)
        self.step_s = step_s
        self.live = live  # event times follow the wall clock instead of a simulated one
        self._profiles: dict[str, tuple[str, float]] = {}
        self._serial = 0
        self._sent_surveys: list[dict[str, Any]] = []
        self._sent_tickets: list[bytes] = []

    def _next_id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self.seed}-{self._serial:08d}"

    def _tick(self, scale: float = 1.0) -> str:
        if self.live:
            return format_timestamp(datetime.now(UTC).replace(microsecond=0))
        self.clock += timedelta(seconds=self.rng.expovariate(1.0 / (self.step_s * scale)))
        return format_timestamp(self.clock.replace(microsecond=0))

    def _customer(self) -> tuple[str, str, float]:
        cid = f"cust-{self.rng.randrange(self.customers):07d}"
        if cid not in self._profiles:
            tier = self.rng.choices(TIERS, TIER_WEIGHTS)[0]
            base = {"standard": 1_200, "silver": 8_000, "gold": 40_000, "platinum": 150_000}[tier]
            self._profiles[cid] = (tier, round(self.rng.lognormvariate(0, 0.5) * base, 2))
        tier, value = self._profiles[cid]
        return cid, tier, value

    def messages(self, count: int) -> Iterator[Message]:
        """Exactly ``count`` messages, in event-time order per customer."""
        n = 0
        while n < count:
            for regular in self._interaction():
                # rates are per message: an irregular message may precede each regular one
                # (not a profile: its messages leave the main random stream as it was)
                irregular = self._irregular() if regular.stream != "profile" else []
                for msg in [*irregular, regular]:
                    yield msg
                    n += 1
                    if n >= count:
                        return

    def _irregular(self) -> list[Message]:
        r, m = self.rng.random(), self.mix
        if r < m.malformed_rate:
            return [self.malformed(self.rng.choice(MALFORMED_KINDS))]
        r -= m.malformed_rate
        if r < m.edit_rate and self._sent_surveys:
            return [self._edit()]
        r -= m.edit_rate
        if r < m.duplicate_rate and self._sent_tickets:
            value = self.rng.choice(self._sent_tickets)
            key = orjson.loads(value)["customer_id"].encode()
            return [Message("ticket", key, value, "duplicate")]
        return []

    def _interaction(self) -> list[Message]:
        cid, tier, value = self._customer()
        out: list[Message] = self._profile_messages(cid, tier, value) if self.profiles else []
        category = self.rng.choice(list(CATEGORY_TEAM))
        team = CATEGORY_TEAM[category]
        channel = self.rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        ticket_id = self._next_id("tkt")
        agent = f"agent-{team[:3]}-{self.rng.randrange(12):02d}"
        priority = self.rng.choices(["low", "normal", "high", "urgent"], [20, 60, 15, 5])[0]

        def ticket(kind: str, at: str | None = None, **extra: Any) -> str:
            doc = {
                "event_id": self._next_id("evt"),
                "ticket_id": ticket_id,
                "customer_id": cid,
                "type": kind,
                "occurred_at": at or self._tick(),
                **extra,
            }
            raw = orjson.dumps(doc)
            self._sent_tickets.append(raw)
            if len(self._sent_tickets) > 500:
                del self._sent_tickets[:250]
            out.append(Message("ticket", cid.encode(), raw))
            return str(doc["occurred_at"])

        ticket(
            "created",
            team=team,
            channel=channel,
            priority=priority,
            category=category,
            customer_tier=tier,
            account_value=value,
        )
        # the contact's queue time and a conversation: their own random stream, and no tick of the
        # shared clock, so the rest of a seed's stream stays as it was
        krng = self.krng
        waited: dict[str, Any] = {}
        if krng.random() >= 0.05:  # 5% abandoned: no queue time
            waited["queue_seconds"] = round(krng.expovariate(1 / 90), 1)
        ticket("assigned", None, agent_id=agent, **waited)
        answered = ticket("first_response", agent_id=agent)
        # a conversation after the first answer (simulated time only: in live mode its replies would
        # be dated in the future), never dated after the wall clock
        if not self.live and krng.random() < 0.4:
            t, latest = parse_timestamp(answered), datetime.now(UTC).replace(microsecond=0)
            for _ in range(krng.randint(1, 2)):
                t = min(t + timedelta(seconds=krng.randint(60, 1800)), latest)
                ticket("customer_reply", at=format_timestamp(t))
                if krng.random() < 0.9:  # now and then the customer is still waiting
                    t = min(t + timedelta(seconds=round(krng.expovariate(1 / 600)) + 1), latest)
                    ticket("agent_reply", at=format_timestamp(t), agent_id=agent)
        trouble = self.rng.random()
        if trouble < 0.08:
            ticket("escalated", reason=self.rng.choice(["angry customer", "refund over limit", "legal"]))
        ticket(
            "resolved",
            talk_seconds=self.rng.randint(60, 1500),
            hold_seconds=self.rng.randint(0, 300),
            wrap_seconds=self.rng.randint(30, 600),
        )
        if trouble > 0.9:
            ticket("reopened", reason="issue came back")
        elif self.rng.random() < 0.6:
            ticket("closed")
        if self.rng.random() < 0.85:
            out.append(self._survey(cid, ticket_id, channel, unhappy=trouble < 0.08 or trouble > 0.9))
        return out

    def _profile_messages(self, cid: str, tier: str, value: float) -> list[Message]:
        """A customer's profile when first seen (85% have one); later, now and then, a change."""
        rng, key = self.prng, cid.encode()
        now = datetime.now(UTC) if self.live else self.clock  # no tick: the main stream stays the same
        if cid not in self._profiled:
            self._profiled.add(cid)
            if rng.random() < 0.15:
                self._unknown.add(cid)
                return []  # not in the CRM
            return [self._profile(cid, tier, value, now - timedelta(days=rng.randint(1, 400)))]
        if cid in self._unknown:
            return []
        r = rng.random()
        if r < 0.01:  # erased: a deletion record or a tombstone
            if rng.random() < 0.5:
                doc = {"customer_id": cid, "updated_at": format_timestamp(now), "deleted": True}
                return [Message("profile", key, orjson.dumps(doc), "deleted")]
            return [Message("profile", key, None, "deleted")]
        if r < 0.05:  # a change; a quarter of the time an older version is synced after it
            newer = self._profile(cid, tier, value, now)
            if rng.random() < 0.25:
                stale = self._profile(cid, tier, value, now - timedelta(days=rng.randint(1, 30)))
                return [newer, Message("profile", key, stale.value, "stale")]
            return [newer]
        return []

    def _profile(self, cid: str, tier: str, value: float, at: datetime) -> Message:
        rng = self.prng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        number = int(cid.rsplit("-", 1)[-1])
        doc: dict[str, Any] = {
            "customer_id": cid,
            "updated_at": format_timestamp(at.replace(microsecond=0)),
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{number}@example.com".replace("á", "a"),
            "preferred_channel": rng.choice(["email", "phone", "chat"]),
            "crm_url": f"https://crm.example.com/customers/{cid}",
            "tier": tier,
            "account_value": value,
        }
        company = rng.choice(COMPANIES)
        if company is not None:
            doc["company"] = company
        if rng.random() < 0.8:  # fictional numbers (555-01xx)
            doc["phone"] = f"+1 202 555 {100 + number % 100:04d}"
        return Message("profile", cid.encode(), orjson.dumps(doc))

    def _scores(self, unhappy: bool) -> dict[str, Any]:
        rng, m = self.rng, self.mix
        detract = rng.random() < (m.detractor_rate * (2.5 if unhappy else 0.85))
        nps = rng.randint(0, 6) if detract else rng.choices([7, 8, 9, 10], [15, 20, 30, 35])[0]
        mood = nps / 10
        scores: dict[str, Any] = {}
        if rng.random() < 0.9:
            scores["nps"] = nps
        if rng.random() < 0.7:
            scores["csat"] = max(1, min(5, round(1 + 4 * mood + rng.gauss(0, 0.6))))
        if rng.random() < 0.6:
            if rng.random() < m.low_effort_rate:
                scores["ces"] = rng.randint(1, 2)
            else:
                scores["ces"] = max(3, min(7, round(2 + 5 * mood + rng.gauss(0, 0.8))))
        if rng.random() < 0.3:
            scores["stars"] = max(1, min(5, round(1 + 4 * mood + rng.gauss(0, 0.7))))
        if rng.random() < 0.15:
            scores["ves"] = {"achieve": rng.randint(1, 7), "confidence": rng.randint(1, 7)}
        if rng.random() < 0.4:
            scores["goal_completed"] = mood > 0.5 or rng.random() < 0.3
        return scores or {"nps": nps}

    def _survey(self, cid: str, ticket_id: str, channel: str, unhappy: bool) -> Message:
        doc: dict[str, Any] = {
            "response_id": self._next_id("resp"),
            "customer_id": cid,
            "submitted_at": self._tick(scale=4),
            "scores": self._scores(unhappy),
            "ticket_id": ticket_id,
            "channel": channel,
            "touchpoint": self.rng.choice(TOUCHPOINTS),
            "locale": self.rng.choice(LOCALES),
        }
        if self.rng.random() < 0.3:
            doc["comment"] = self.rng.choice(
                [
                    "Took far too long.",
                    "Great help, thanks!",
                    "Had to explain twice.",
                    "Agent was friendly.",
                    "Still not fixed.",
                    "Quick and easy.",
                ]
            )
        self._sent_surveys.append(doc)
        if len(self._sent_surveys) > 500:
            del self._sent_surveys[:250]
        return Message("survey", cid.encode(), orjson.dumps(doc))

    def _edit(self) -> Message:
        doc = dict(self.rng.choice(self._sent_surveys))
        doc["scores"] = self._scores(unhappy=self.rng.random() < 0.5)
        return Message("survey", doc["customer_id"].encode(), orjson.dumps(doc), "edit")

    def malformed(self, kind: str) -> Message:
        """One broken message of a named kind (see ``MALFORMED_KINDS``)."""
        cid, _, _ = self._customer()
        good = {
            "response_id": self._next_id("resp"),
            "customer_id": cid,
            "submitted_at": self._tick(),
            "scores": {"nps": 5},
        }
        broken: dict[str, Any] | None = None
        raw: bytes
        if kind == "not_json":
            raw = b'{"response_id": "r-1", "scores": {'
        elif kind == "not_utf8":
            raw = b'{"response_id": "\xff\xfe"}'
        elif kind == "not_object":
            raw = b'["a", "list"]'
        else:
            broken = dict(good)
            if kind == "nps_out_of_range":
                broken["scores"] = {"nps": 11}
            elif kind == "missing_customer":
                del broken["customer_id"]
            elif kind == "bad_timestamp":
                broken["submitted_at"] = "22/11/2026 13:20"
            elif kind == "wrong_type":
                broken["scores"] = {"nps": "9"}
            elif kind == "no_scores":
                broken["scores"] = {}
            else:
                raise ValueError(f"unknown malformed kind {kind!r}; choose from {MALFORMED_KINDS}")
            raw = orjson.dumps(broken)
        return Message("survey", cid.encode(), raw, f"malformed:{kind}")
