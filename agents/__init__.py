"""Thin async stages that move batches between Kafka and the pure pipeline.

``install`` declares the topics and tables of every stage on an app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream.settings import Settings

if TYPE_CHECKING:
    from stream.app import SurveyApp


def install(app: SurveyApp, settings: Settings) -> None:
    """Declare every stage's topics, tables and agents on ``app``."""
    from agents.aggregate import install_aggregate
    from agents.followup import install_followup
    from agents.intake import install_intake

    intake, send, gate = install_intake(app, settings)
    assert intake.windows is not None
    install_aggregate(app, settings, intake.windows)
    install_followup(app, settings, send, gate)
