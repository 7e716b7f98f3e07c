"""The README's "Using it" commands, run as written (on copies of the sample handbook) so that they stay true.

`penny serve` and `penny eval` would run for minutes: for those the test checks that every option the README
shows exists. `documents list | show ID | delete ID...` is shorthand for three commands and runs as three.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from penny import get_settings

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def readme_commands() -> list[list[str]]:
    """The `penny ...` lines of the first shell block under "## Using it", comments dropped, split as a shell does."""
    section = (REPO / "README.md").read_text().split("## Using it", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("penny ")]


@pytest.fixture()
def folders(tmp_path, monkeypatch):
    handbook, private = tmp_path / "handbook", tmp_path / "hr-private"
    for relative in ("leave/annual-leave.md", "leave/sick-leave.md", "expenses/expense-policy.md"):
        (handbook / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "data" / "corpus" / relative, handbook / relative)
    private.mkdir()
    shutil.copy(REPO / "data" / "corpus" / "hr" / "grievance-and-disciplinary.txt", private)
    for name, value in {"DATA_DIR": tmp_path / "data", "LLM_MODEL": "smollm2-135m", "LLM_MAX_TOKENS": 16}.items():
        monkeypatch.setenv(f"PENNY_{name}", str(value))
    monkeypatch.setenv("HOME", str(tmp_path))  # `~/handbook` is the copy above
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(Path(arg).expanduser()) if arg.startswith("~") else arg for arg in args])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def test_the_readme_commands_work_as_written(folders):
    commands = readme_commands()
    expected = "ingest ingest ingest search ask documents jobs keys serve eval".split()
    assert [command[1] for command in commands] == expected
    for command in commands:
        args = command[1:]
        if args[0] in ("serve", "eval"):
            shown = run(args[0], "--help")
            assert all(option in shown for option in args if option.startswith("--")), args
        elif args[0] == "documents":  # `documents list | show ID | delete ID...`
            listed = json.loads(run("documents", "list", "--json"))
            assert {Path(doc["path"]).name for doc in listed} >= {"annual-leave.md", "grievance-and-disciplinary.txt"}
            first = str(listed[0]["id"])
            assert json.loads(run("documents", "show", first, "--json"))["id"] == listed[0]["id"]
            run("documents", "delete", first)
            assert first not in {str(doc["id"]) for doc in json.loads(run("documents", "list", "--json"))}
        else:
            run(*args)
    asked = json.loads(run("ask", "How many days of annual leave do full-time employees get?", "--json"))
    assert asked["path"] in ("passages", "cache") and "25" in asked["answer"]
