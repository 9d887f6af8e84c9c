"""No await on the broker without a bound: a wait past its deadline ends the process.

aiokafka can leave a produce batch, and with it Faust's commit (``producer.flush()``
before every offset commit), waiting forever after a broker freeze (RELIABILITY.md says
what was found). Nothing the process can do from inside restores such a client, and
every state of the worker is in changelogs and every output has a deterministic id: so a
wait that passes its deadline is an ERROR line naming the operation, a metric, and an
exit with ``EXIT_STALLED`` for the supervisor (systemd, Kubernetes, compose) to restart
the process. A restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

from prometheus_client import CollectorRegistry, Counter

from stream.metrics import PREFIX

log = logging.getLogger(__name__)
T = TypeVar("T")
EXIT_STALLED = 75  # EX_TEMPFAIL: try again (a restart)


def exit_for_restart(reason: str) -> NoReturn:
    """Log ``reason`` at ERROR, flush every log handler, and exit with ``EXIT_STALLED`` at once.

    ``os._exit``: a stuck event loop or client thread must not keep a graceful shutdown waiting.
    """
    log.error("%s; exiting (status %d) for the supervisor to restart the process", reason, EXIT_STALLED)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # a broken handler must not keep the process alive
            handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STALLED)


def bound_shutdown(seconds: float, what: str = "The graceful shutdown") -> threading.Timer:
    """Exit for a restart if the process has not ended ``seconds`` from now.

    A thread, not a task: a shutdown stuck in the event loop (a client retrying a broker
    that is gone, a flush that never returns) cannot hold it up.
    """
    timer = threading.Timer(seconds, exit_for_restart, [f"{what} did not finish within {seconds:g} s"])
    timer.daemon = True
    timer.start()
    return timer


def stopping(stop: asyncio.Event, seconds: float) -> Callable[[], None]:
    """A signal handler: set ``stop``, and exit anyway if the process has not ended ``seconds`` later."""
    bound: list[threading.Timer] = []

    def handler() -> None:
        stop.set()
        if not bound:
            bound.append(bound_shutdown(seconds))

    return handler


class Deadlines:
    """Bounds every wait given to ``within``; past one, ``on_expired`` is called (it does not return)."""

    def __init__(
        self,
        seconds: float,
        registry: CollectorRegistry | None = None,
        on_expired: Callable[[str], NoReturn] = exit_for_restart,
    ) -> None:
        self.seconds = seconds
        self.on_expired = on_expired
        self.exceeded = Counter(
            f"{PREFIX}_deadline_exceeded_total",
            "Waits on the broker that passed their deadline (each ends the process), by operation",
            ["operation"],
            registry=registry,
        )

    async def within(self, operation: str, waiting: Awaitable[T]) -> T:
        """``await waiting``, at most ``self.seconds``."""
        try:
            return await asyncio.wait_for(waiting, self.seconds)
        except TimeoutError:
            self.exceeded.labels(operation).inc()
            self.on_expired(
                f"{operation} did not finish within {self.seconds:g} s: the broker is not answering"
            )
