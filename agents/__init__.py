"""The worker's stages: thin async loops that move batches between Kafka and the pure pipeline.

Owns: ``intake`` (surveys and ticket events in; alerts, escalations, dead letters and
customer state out), ``aggregate`` (window partials merged into ``feedback-windows`` and
trend alerts) and ``followup`` (actions in; SLA clock, ``followup-events`` and overdue
escalations out). ``install`` declares every stage's topics, tables and agents.

May import: ``schemas``, ``alerts``, the shared ``stream`` layers (``settings``, ``metrics``,
``stream.kafka``, ``stream.pipeline``) and the worker's runtime building blocks
(``stream.worker.runtime``, ``state``, ``outputs``, ``pacing``, ``delivery``). Never the app
itself (``stream.worker.app``) nor the composition root (``stream.worker.main``), which
imports this package; never another process's package.
"""

from __future__ import annotations

from agents.aggregate import install_aggregate
from agents.followup import install_followup
from agents.intake import install_intake
from stream.settings import Settings
from stream.worker.runtime import StageRuntime


def install(app: StageRuntime, settings: Settings) -> None:
    """Declare every stage's topics, tables and agents on ``app``."""
    intake, send, gate = install_intake(app, settings)
    assert intake.windows is not None
    install_aggregate(app, settings, intake.windows)
    install_followup(app, settings, send, gate)
