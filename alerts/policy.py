"""Which scores raise which alert, how severe it is, and when follow-up is due."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from schemas.fast import FastScores


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason a response needs a follow-up."""

    kind: str
    metric: str
    score: int
    threshold: int
    severity: str


@dataclass(frozen=True)
class AlertPolicy:
    """Thresholds (inclusive: a score at or below raises), severities and follow-up SLAs."""

    nps_max: int = 6
    ces_max: int = 2
    csat_max: int | None = 2
    stars_max: int | None = 2
    key_tiers: frozenset[str] = frozenset({"gold", "platinum"})
    key_account_value: float = 50_000.0
    sla: dict[str, timedelta] = field(
        default_factory=lambda: {
            "critical": timedelta(hours=4),
            "warning": timedelta(hours=24),
            "info": timedelta(hours=72),
        }
    )

    tier_factors: dict[str, float] = field(default_factory=dict)
    cooldown_s: float = 86_400.0
    escalate_tiers: frozenset[str] = frozenset({"gold", "platinum"})
    escalate_account_value: float = 50_000.0

    def is_key_account(self, tier: str | None, account_value: float | None) -> bool:
        """A key account's alerts are always critical."""
        return (tier is not None and tier in self.key_tiers) or (
            account_value is not None and account_value >= self.key_account_value
        )

    def classify(
        self, scores: FastScores, tier: str | None = None, account_value: float | None = None
    ) -> list[Finding]:
        """Return every reason these scores need a follow-up, in a stable order."""
        checks: list[tuple[str, str, int | None, int | None, int]] = [
            # kind, metric, score, threshold (inclusive), the worst possible score
            ("detractor", "nps", scores.nps, self.nps_max, 0),
            ("low_effort", "ces", scores.ces, self.ces_max, 1),
            ("low_csat", "csat", scores.csat, self.csat_max, 1),
            ("low_stars", "stars", scores.stars, self.stars_max, 1),
        ]
        key = self.is_key_account(tier, account_value)
        found = []
        for kind, metric, score, threshold, worst in checks:
            if score is None or threshold is None or score > threshold:
                continue
            # The bottom half of the alerting range is critical, the rest a warning.
            critical = key or score <= worst + (threshold - worst) // 2
            found.append(Finding(kind, metric, score, threshold, "critical" if critical else "warning"))
        return found

    def due(self, severity: str, tier: str | None = None) -> timedelta:
        """How long the team has to follow up on an alert of this severity (shorter for top tiers)."""
        factor = self.tier_factors.get(tier, 1.0) if tier is not None else 1.0
        return self.sla[severity] * factor

    def escalates(self, tier: str | None, account_value: float | None) -> bool:
        """Alerts of these customers also go to their team's queue as escalations."""
        return (tier is not None and tier in self.escalate_tiers) or (
            account_value is not None and account_value >= self.escalate_account_value
        )
