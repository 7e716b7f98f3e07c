"""The `penny` command as an admin runs it: a real subprocess on a real data directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PENNY = str(Path(sys.executable).with_name("penny"))
SAMPLE = ["leave/annual-leave.md", "travel/per-diem-rates.html", "it-security/password-and-mfa.md"]


def penny(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PENNY_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    done = subprocess.run([PENNY, *args], env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    docs = root / "docs"
    for relative in SAMPLE:
        target = docs / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "data" / "corpus" / relative, target)
    (docs / "notes.xyz").write_text("not a supported type")
    data_dir = root / "data"
    report = json.loads(penny(data_dir, "ingest", str(docs), "--json").stdout)
    assert (report["added"], report["skipped"], report["index_version"]) == (3, 1, 1)
    return docs, data_dir


def test_help_explains_every_command():
    out = penny(Path("/nonexistent"), "--help").stdout
    for command in ("ingest", "search", "ask", "documents", "jobs", "keys", "serve", "eval"):
        assert command in out
    assert "--prune" in penny(Path("/nonexistent"), "ingest", "--help").stdout


def test_plain_summary_and_unchanged_rerun(workspace):
    docs, data_dir = workspace
    out = penny(data_dir, "ingest", str(docs)).stdout
    assert "3 unchanged" in out and "index version unchanged" in out
    assert "unsupported file type '.xyz'" in out


def test_documents_and_jobs(workspace):
    _, data_dir = workspace
    documents = json.loads(penny(data_dir, "documents", "list", "--json").stdout)
    assert sorted(Path(d["path"]).name for d in documents) == sorted(Path(p).name for p in SAMPLE)
    leave = next(d for d in documents if d["path"].endswith("annual-leave.md"))
    shown = json.loads(penny(data_dir, "documents", "show", str(leave["id"]), "--json").stdout)
    assert shown["chunks"] and all(c["section"] for c in shown["chunks"])
    jobs = json.loads(penny(data_dir, "jobs", "--json").stdout)
    assert jobs[-1]["status"] == "succeeded" and jobs[-1]["errors"][0]["kind"] == "unsupported"


def test_search_prints_ranked_passages(workspace):
    _, data_dir = workspace
    result = json.loads(penny(data_dir, "search", "per diem for a day in Lisbon", "--k", "3", "--json").stdout)
    assert len(result["passages"]) == 3
    assert result["passages"][0]["chunk"]["source_path"].endswith("per-diem-rates.html")
    assert 0.0 <= result["confidence"] <= 1.0
    assert "per-diem-rates.html" in penny(data_dir, "search", "per diem Lisbon").stdout


def test_errors_are_clear_and_exit_non_zero(workspace, tmp_path):
    _, data_dir = workspace
    empty = penny(data_dir, "search", "   ", check=False)
    assert empty.returncode == 1 and "query is empty" in empty.stderr and "Traceback" not in empty.stderr
    missing = penny(data_dir, "documents", "show", "9999", check=False)
    assert missing.returncode == 1 and "no document with id 9999" in missing.stderr
    nothing = penny(tmp_path / "fresh", "search", "leave", check=False)
    assert nothing.returncode == 1 and "penny ingest" in nothing.stderr
    bad_config = subprocess.run(
        [PENNY, "search", "x"], env={**os.environ, "PENNY_EMBED_THREADS": "zero"}, capture_output=True, text=True
    )
    assert bad_config.returncode == 1 and "embed_threads" in bad_config.stderr


def test_delete_publishes_a_version_without_the_document(workspace):
    docs, data_dir = workspace
    documents = json.loads(penny(data_dir, "documents", "list", "--json").stdout)
    target = next(d for d in documents if d["path"].endswith("password-and-mfa.md"))
    assert "deleted 1 document" in penny(data_dir, "documents", "delete", str(target["id"])).stdout
    result = json.loads(penny(data_dir, "search", "password length multi-factor", "--json").stdout)
    assert all(not p["chunk"]["source_path"].endswith("password-and-mfa.md") for p in result["passages"])
    penny(data_dir, "ingest", str(docs))  # and a re-run brings it back
    result = json.loads(penny(data_dir, "search", "password length multi-factor", "--json").stdout)
    assert result["passages"][0]["chunk"]["source_path"].endswith("password-and-mfa.md")
