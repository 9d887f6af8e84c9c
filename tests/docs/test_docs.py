"""The README and the manual in docs/ stay honest: what they show exists and loads.

Every ``survey-alerts`` command and option shown is a real command and option; every
setting is documented and every ``SURVEY_ALERTS_*`` named is a setting (or a test helper's
variable); every TOML and JSON example parses, and every rules-file or users-file example
loads with the code that loads those files; every linked file and anchor exists, and every
repository path shown is there.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click
import orjson
import pytest

from alerts.routing import load_rules
from stream.cli import main
from stream.inbox.auth import load_users
from stream.settings import Settings

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
MANUAL = [README, *PAGES, ROOT / "RELIABILITY.md", ROOT / "ops" / "README.md", ROOT / "ops" / "RUNBOOK.md"]
# variables read by the tests' and the bench's helpers, not settings of the service
HELPER_VARIABLES = {
    "SURVEY_ALERTS_CACHE",
    "SURVEY_ALERTS_KAFKA_VERSION",
    "SURVEY_ALERTS_TEST_OUTAGE_S",
    "SURVEY_ALERTS_TEST_BURST_BACKLOG",
    "SURVEY_ALERTS_TEST_FREEZES",
    "SURVEY_ALERTS_ARTIFACTS",
}
# paths a reader creates (ignored by git), shown as what to create
CREATED_BY_THE_READER = {"ops/compose/inbox-users.toml"}


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_blocks(page: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page, re.S)


def inline_code(page: str) -> list[str]:
    prose = re.sub(r"```.*?```", "", page, flags=re.S)
    return re.findall(r"`([^`\n]+)`", prose)


def test_the_readme_is_a_front_door() -> None:
    assert len(text(README).splitlines()) <= 200
    for page in PAGES:
        assert f"docs/{page.name}" in text(README) or any(
            f"]({page.name}" in text(other) for other in PAGES if other != page
        ), f"{page.name} is linked from nowhere"


def test_exactly_two_setup_commands() -> None:
    setup = text(README).split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, re.S)
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[demo]' && .venv/bin/survey-alerts demo",
        "bash .ci/run",
    ]


def test_every_setting_is_in_the_configuration_page() -> None:
    page = text(ROOT / "docs" / "configuration.md")
    for name in Settings.model_fields:
        upper = name.upper()
        assert f"SURVEY_ALERTS_{upper}" in page or f"`_{upper}`" in page, name


def test_every_variable_named_is_a_setting_or_a_helpers() -> None:
    known = {f"SURVEY_ALERTS_{name.upper()}" for name in Settings.model_fields} | HELPER_VARIABLES
    for path in MANUAL:
        page = text(path)
        named = set(re.findall(r"\bSURVEY_ALERTS_[A-Z0-9_]*[A-Z0-9]", page))
        named |= {f"SURVEY_ALERTS{m}" for m in re.findall(r"`(_[A-Z][A-Z0-9_]*[A-Z0-9])`", page)}
        assert named <= known, (path.name, sorted(named - known))
    sources = "\n".join(text(p) for p in [*ROOT.glob("stream/**/*.py"), *ROOT.glob("tests/**/*.py")])
    for variable in HELPER_VARIABLES:
        assert variable in sources, variable


def shown_commands() -> list[tuple[str, str]]:
    """Every ``survey-alerts ...`` invocation shown: in inline code and in shell blocks."""
    found = []
    for path in [*MANUAL, ROOT / "BENCHMARKS.md"]:
        page = text(path)
        spans = inline_code(page) + [
            line for block in code_blocks(page, "bash") for line in block.splitlines()
        ]
        for span in spans:
            for m in re.finditer(r"survey-alerts((?: +[^ ]+)*)", span):
                found.append((path.name, m.group(1).strip()))
    return found


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The command ``words`` name, and the words left for its options and arguments."""
    command: click.Command = main
    while words and isinstance(command, click.Group):
        names = words[0].split("|")
        if not all(n in command.commands for n in names):
            break
        command = command.commands[names[0]]
        words = words[1:]
    return command, words


def test_every_command_and_option_shown_exists() -> None:
    shown = shown_commands()
    assert len(shown) > 20
    for page, invocation in shown:
        words = re.sub(r"[\[\]()]", " ", invocation).split()
        command, rest = resolve(words)
        assert command is not main or not words or words[0].startswith("--"), (page, invocation)
        options = {opt for p in command.params for opt in [*p.opts, *p.secondary_opts]} | {"--help"}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=", 1)[0] in options, (page, invocation, word)


def test_a_wrong_command_would_be_caught() -> None:
    command, rest = resolve(["rules", "chek", "FILE"])
    assert command.name == "rules" and rest == ["chek", "FILE"]
    command, _ = resolve(["kafka", "start|stop"])
    assert command.name == "start"


def toml_examples() -> list[tuple[str, str]]:
    return [(p.name, block) for p in MANUAL for block in code_blocks(text(p), "toml")]


def test_there_are_examples_to_load() -> None:
    assert len(toml_examples()) >= 2


@pytest.mark.parametrize(("page", "block"), toml_examples())
def test_every_toml_example_loads(page: str, block: str, tmp_path: Path) -> None:
    tomllib.loads(block)  # parses
    path = tmp_path / "example.toml"
    path.write_text(block)
    if "[users." in block or "[tokens." in block:
        load_users(path)
    elif any(k in block for k in ("[destinations.", "[[notify]]", "[[rules]]", "[[playbook]]", "_queue")):
        load_rules(path)


def test_the_shipped_example_files_load() -> None:
    load_rules(ROOT / "alerts" / "rules.example.toml")
    load_rules(ROOT / "ops" / "compose" / "rules.toml")
    load_users(ROOT / "ops" / "compose" / "inbox-users.example.toml")


def test_every_json_example_parses() -> None:
    for path in MANUAL:
        for block in code_blocks(text(path), "json"):
            orjson.loads(block)


def anchors(page: str) -> set[str]:
    heads = re.findall(r"(?m)^#+ (.+)$", re.sub(r"```.*?```", "", page, flags=re.S))
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in heads}


def test_every_link_points_at_a_file_and_heading_that_exist() -> None:
    for path in [*MANUAL, ROOT / "BENCHMARKS.md"]:
        for target in re.findall(r"\]\(([^)\s]+)\)", text(path)):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), (path.name, target)
            if anchor:
                assert anchor in anchors(text(linked)), (path.name, target)


def test_every_repository_path_shown_exists() -> None:
    tops = ("stream/", "agents/", "alerts/", "schemas/", "tests/", "ops/", "docs/", ".ci/")
    for path in MANUAL:
        for span in inline_code(text(path)):
            for word in span.split():
                word = word.strip(".,:;()'\"").split("#")[0]
                if word.startswith(tops) and not any(c in word for c in "*<>{}$"):
                    assert (ROOT / word).exists() or word in CREATED_BY_THE_READER, (path.name, word)
                elif re.fullmatch(r"test_[a-z_]+\.py", word):
                    assert list(ROOT.glob(f"tests/**/{word}")), (path.name, word)
