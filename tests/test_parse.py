"""Markdown and HTML parse without unstructured's NLP text classification, into exactly the blocks it would give.

ingest/parse.py takes every untagged paragraph of an HTML-shaped document as narrative instead of asking spaCy:
these tests hold that to "changes no block", on the bundled handbook and, when ../shared is there, on real
OpenShift documentation, and check that no spaCy model is loaded at all for such files.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from eval.datasets import shared_data_dir
from ingest.parse import parse_bytes

REPO = Path(__file__).resolve().parents[1]
HTML_SHAPED = (".md", ".html")


def _parse_with_library_check(path: Path, monkeypatch: pytest.MonkeyPatch):
    from unstructured.partition import text_type
    from unstructured.partition.html import parser

    with monkeypatch.context() as patch:
        patch.setattr("ingest.parse._skip_narrative_check", lambda: None)
        patch.setattr(parser, "is_possible_narrative_text", text_type.is_possible_narrative_text)
        return parse_bytes(path, path.read_bytes())


def _assert_same_blocks(paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths
    for path in paths:
        assert parse_bytes(path, path.read_bytes()) == _parse_with_library_check(path, monkeypatch), path


def test_handbook_markdown_and_html_parse_into_the_blocks_the_nlp_check_gives(monkeypatch):
    handbook = sorted(p for p in (REPO / "data" / "corpus").rglob("*") if p.suffix in HTML_SHAPED)
    _assert_same_blocks(handbook, monkeypatch)


def test_openshift_docs_parse_into_the_blocks_the_nlp_check_gives(monkeypatch):
    docs = shared_data_dir() / "ocp-4.15" / "docs"
    if not docs.is_dir():
        pytest.skip("../shared/data/ocp-4.15 is not here")
    files = sorted(p for p in docs.rglob("*") if p.is_file())
    _assert_same_blocks(random.Random(7).sample(files, 25), monkeypatch)


def test_markdown_and_html_load_no_spacy_model_while_plain_text_still_does(tmp_path):
    (tmp_path / "a.md").write_text("# Leave\n\nStaff get 25 days of leave a year.\n\nShort line\n")
    (tmp_path / "b.html").write_text("<h1>Travel</h1><p>Book trains two weeks ahead.</p><p>Ask your manager</p>")
    (tmp_path / "c.txt").write_text("TRAVEL POLICY\n\nBook trains two weeks ahead of the trip.\n")
    script = """
import json, sys
from pathlib import Path
from ingest.parse import parse_bytes
from unstructured.nlp import tokenize
loaded = {}
for name in sys.argv[1:]:
    path = Path(name)
    parse_bytes(path, path.read_bytes())
    loaded[path.suffix] = tokenize._get_nlp.cache_info().currsize
print(json.dumps(loaded))
"""
    names = [str(tmp_path / n) for n in ("a.md", "b.html", "c.txt")]
    done = subprocess.run([sys.executable, "-c", script, *names], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {".md": 0, ".html": 0, ".txt": 1}
