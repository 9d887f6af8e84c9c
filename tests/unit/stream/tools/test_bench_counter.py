"""The bench subprocesses' target count: exits at the target with the timing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from stream.tools.bench.counter import TargetCount


def test_below_the_target_it_only_counts(tmp_path: Path) -> None:
    count = TargetCount(3, tmp_path / "out.json")
    count()
    count("a record", "ignored")
    assert count.n == 2
    assert not (tmp_path / "out.json").exists()


def test_at_the_target_it_writes_the_timing_and_exits(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    code = (
        "import sys\n"
        "from stream.tools.bench.counter import TargetCount\n"
        "count = TargetCount(5, sys.argv[1])\n"
        "for _ in range(10):\n"
        "    count()\n"
        "raise SystemExit(3)  # not reached: the count exits at its target\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], timeout=60, check=False)
    assert done.returncode == 0
    doc = orjson.loads(out.read_bytes())
    assert doc["events"] == 5
    assert doc["seconds"] >= 0 and doc["cpu_s"] >= 0
