"""The wheel (what the Dockerfile installs) holds every package and data file of the tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]
ROOTS = ("schemas", "alerts", "agents", "stream")


def test_the_wheel_holds_every_module_template_and_schema(tmp_path: Path) -> None:
    # from a copy of the tree, as the Dockerfile's build stage sees it (no build/ left in the checkout)
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "tests", ".*cache"),
    )
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = wheels.glob("survey_alerts-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        str(p.relative_to(ROOT))
        for root in ROOTS
        for p in (ROOT / root).rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix in (".py", ".html", ".md", ".css", ".js", ".json", ".toml")
    }
    assert wanted - names == set()
