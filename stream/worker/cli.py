"""The worker's command: ``survey-alerts worker``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from stream.console import configure_logging, formatter, settings_or_exit

if TYPE_CHECKING:  # the app and its stages load only when the worker runs
    from stream.worker.main import Companions


def worker_command(companions: Companions | None = None) -> click.Command:
    """The ``worker`` command; ``companions`` run beside the agents (see ``stream.worker.main``)."""

    @click.command()
    def worker() -> None:
        """Run the Faust worker against SURVEY_ALERTS_BROKER (every setting from SURVEY_ALERTS_*)."""
        import faust

        from stream.deadline import bound_shutdown
        from stream.errors import ConfigurationError
        from stream.kafka.topics import ensure_topics
        from stream.worker.app import tune_runtime
        from stream.worker.main import create_app

        try:
            settings = settings_or_exit()
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        configure_logging(settings)
        try:
            ensure_topics(settings)
            if settings.notify_in_worker:
                from stream.kafka.topics import ensure_notifier_topics

                ensure_notifier_topics(settings)
            app = create_app(settings, companions=companions)
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None

        class Worker(faust.Worker):
            shutdown_bound: Any = None

            def _schedule_shutdown(self, signal: Any) -> None:
                self._bound_shutdown()
                super()._schedule_shutdown(signal)

            def on_worker_shutdown(self) -> None:
                self._bound_shutdown()  # a crash stops the worker too
                super().on_worker_shutdown()

            def _bound_shutdown(self) -> None:
                if self.shutdown_bound is None:
                    self.shutdown_bound = bound_shutdown(settings.shutdown_timeout_s)

            def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
                super().on_setup_root_logger(logger, level)
                for handler in logger.handlers:  # Faust's own handler: SURVEY_ALERTS_LOG_FORMAT too
                    handler.setFormatter(formatter(settings))
                # the Kafka clients' debug logging costs a tenth of a busy worker's time, and
                # Faust's recovery logs every changelog record at debug level
                for name in ("aiokafka", "kafka"):
                    logging.getLogger(name).setLevel(max(level, logging.WARNING))
                for name in ("faust", "mode"):
                    logging.getLogger(name).setLevel(max(level, logging.INFO))

        tune_runtime()
        Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()

    return worker
