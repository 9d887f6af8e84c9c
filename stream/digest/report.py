"""Reading a period from the read model, and rendering the digest as Markdown or HTML."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from alerts.digest import Digest, Thresholds, build, fmt, money, spend
from alerts.notify import escape
from stream.digest import charts
from stream.errors import ConfigurationError
from stream.readmodel.db import ReadModel
from stream.settings import Settings


def window_for(settings: Settings, period_s: float) -> str:
    """The rolling window as long as the period: its snapshot at a period's end has the period's scores."""
    for spec in settings.window_specs():
        if abs(spec.size - period_s) < 1:
            return spec.name
    names = ", ".join(s.name for s in settings.window_specs())
    raise ConfigurationError(
        f"no rolling window is as long as the period ({period_s / 86400:g} d); "
        f"SURVEY_ALERTS_WINDOWS has {names}"
    )


async def compute(settings: Settings, until: float, period_s: float, now: float | None = None) -> Digest:
    """The digest of ``[until - period, until)`` from the inbox's read model (SURVEY_ALERTS_INBOX_DB)."""
    window = window_for(settings, period_s)
    model = ReadModel(settings.inbox_db)
    try:
        await model.require_current()
        start, before = until - period_s, until - 2 * period_s
        current = await model.period(start, until)
        previous = await model.period(before, start)
        snaps = await model.snapshots(["overall", "category"], window, until)
        prev_snaps = await model.snapshots(["overall", "category"], window, start)
    finally:
        await model.close()
    return build(
        start,
        until,
        current,
        previous,
        snaps,
        prev_snaps,
        settings.targets,
        settings.key_tiers,
        settings.key_account_value,
        now if now is not None else until,
        Thresholds.of(settings.digest_thresholds),
        settings.concession_currency,
    )


async def suggest(settings: Settings, until: float, period_s: float, min_resolved: int | None = None) -> str:
    """``survey-alerts playbook suggest``: the caps ``[until - period, until)`` supports, as TOML."""
    from alerts.concessions import resolutions, suggestion

    rules = settings.rules()
    thresholds = Thresholds.of(settings.digest_thresholds)
    model = ReadModel(settings.inbox_db)
    try:
        await model.require_current()
        found = await model.period(until - period_s, until)
    finally:
        await model.close()

    def action(kind: str, category: str | None) -> str | None:
        plays = [p for p in rules.playbook if p.kind == kind and p.category == category]
        return plays[0].first_tier.action if plays else None

    followed = [a for a in found["alerts"] if a.get("kind") != "followup_overdue"]
    return suggestion(
        resolutions(followed, found["events"]),
        settings.concession_currency,
        min_resolved or thresholds.concession_min_resolved,
        action,
        f"{_day(until - period_s)} to {_day(until)}",
    )


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _env(autoescape: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("stream.digest", "templates"),
        autoescape=select_autoescape(["html"]) if autoescape else False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        fmt=lambda v, m: fmt(m, v),
        money=money,
        pct=lambda v: "n/a" if v is None else f"{v:.0%}",
        day=_day,
        md=lambda v: escape.markdown(str(v)),  # every value from events, in the Markdown report
        delta=delta,
        spend=lambda v, currency: "n/a" if v is None else spend(v, currency),
        rule=lambda c, currency: c.rule(lambda v: spend(v, currency)),
    )
    return env


def delta(change: float, metric: str) -> str:
    """A change in the unit its goal is read in: points of a score, percentage points of a share."""
    if metric == "close_ratio":
        return f"{change * 100:+.0f} pts"
    if metric.endswith("_seconds"):
        return ("+" if change >= 0 else "-") + fmt(metric, abs(change))
    return f"{change:+.1f}"


def _context(d: Digest, z: float = 1.96) -> dict[str, Any]:
    return {"d": d, "period": f"{_day(d.start)} to {_day(d.end)}", "z": z}


def markdown(d: Digest) -> str:
    """The digest for chat and e-mail."""
    return _env(False).get_template("digest.md").render(**_context(d))


def html(d: Digest) -> str:
    """A self-contained page: inline CSS and SVG, nothing fetched."""
    return (
        _env(True)
        .get_template("digest.html")
        .render(
            goals_chart=Markup(charts.goals(d.goals)),
            drivers_chart=Markup(charts.drivers(d.risks)),
            **_context(d),
        )
    )


def subject(d: Digest) -> str:
    state = "on track" if d.on_track else "not on track"
    return f"Customer service update {_day(d.start)[:10]} to {_day(d.end)[:10]}: {state}"
