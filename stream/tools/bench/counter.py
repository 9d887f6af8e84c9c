"""The count that ends a bench subprocess: the baselines and the peer stop on it the same way."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson


class TargetCount:
    """Count records; at ``target``, write ``{"events", "seconds", "cpu_s"}`` to ``out`` and exit.

    Seconds and CPU (the process's, all threads) run from the first record counted.
    The measurement is done at the target: the process exits with no graceful shutdown
    to time.
    """

    def __init__(self, target: int, out: str | Path) -> None:
        self.target = target
        self.out = Path(out)
        self.n = 0
        self.t0 = self.cpu0 = 0.0

    def __call__(self, *_ignored: object) -> None:
        if self.n == 0:
            self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.n += 1
        if self.n >= self.target:
            self.out.write_bytes(self.result())
            os._exit(0)

    def result(self) -> bytes:
        return orjson.dumps(
            {
                "events": self.n,
                "seconds": time.perf_counter() - self.t0,
                "cpu_s": time.process_time() - self.cpu0,
            }
        )
