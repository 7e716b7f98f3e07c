"""An index that grows by segments: each publish writes one segment for what changed and reuses the rest, and
search over the segments equals search over one index rebuilt from the same rows.

Most tests write the catalogue directly (real SQLite, real FAISS, the handbook's own paragraphs as text, random
unit vectors in place of the embedder, which would only make them slower) and publish as ingestion does; one
runs real ingestion end to end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select

from penny import IndexUnavailable, Settings
from retrieval.analysis import analyze_many
from retrieval.bm25 import Bm25sIndex, RankBm25Index, SegmentedBm25, SegmentedRankBm25, TermCounts
from retrieval.build import chunking_key
from retrieval.catalogue import ChunkRow, Document, EmbeddingRow, live_version, open_catalogue
from retrieval.embedder import embedding_key
from retrieval.indexer import compact, index_status, index_text, publish_version, text_sha256, tidy_versions
from retrieval.search import Searcher, SearchFilter
from retrieval.snapshot import Snapshot, read_manifest, segment_folder, version_folder

ROOT = Path(__file__).resolve().parents[1]
DIMENSION = 48


def paragraphs() -> list[str]:
    found = []
    for path in sorted((ROOT / "data" / "corpus").rglob("*")):
        if path.suffix in (".md", ".txt"):
            found += [part.strip() for part in re.split(r"\n\s*\n", path.read_text()) if len(part.split()) >= 3]
    return found


def questions() -> list[str]:
    lines = (ROOT / "data" / "sample-questions.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines]


class Corpus:
    """A catalogue written the way ingestion writes it, each change published as one job publishes."""

    def __init__(self, settings: Settings, seed: int = 3) -> None:
        # random vectors no embedder made: fusion calibration, which embeds its pseudo-queries, has nothing to measure
        self.settings = settings.model_copy(update={"fusion_calibration": False})
        self.sessions = open_catalogue(settings)
        self.rng = np.random.default_rng(seed)
        self.texts = iter(paragraphs() * 20)

    def publish(self, add: dict[str, int] | None = None, remove: tuple[str, ...] = (), **options) -> int:
        """Add (or replace) documents with that many fresh chunks each, remove others, publish one version."""
        with self.sessions.begin() as session:
            for path in remove:
                session.execute(delete(Document).where(Document.path == path))
            for path, chunks in (add or {}).items():
                self._store(session, path, chunks)
            session.flush()
            version = publish_version(session, self.settings, DIMENSION, None, **options)
        tidy_versions(self.sessions, self.settings)
        return version

    def _store(self, session, path: str, chunks: int) -> None:
        document = session.scalars(select(Document).where(Document.path == path)).one_or_none()
        if document is None:
            document = Document(
                path=path,
                sha256="",
                size=0,
                mtime=0.0,
                title=path,
                doc_type="txt",
                groups=["everyone"],
                status="indexed",
                chunking=chunking_key(self.settings),
            )
            session.add(document)
        else:
            session.execute(delete(ChunkRow).where(ChunkRow.document_id == document.id))
        session.flush()
        for ordinal in range(chunks):
            text = f"{next(self.texts)} ({path} {ordinal} {self.rng.integers(1 << 30)})"
            digest = text_sha256(index_text(path, "", text))
            session.add(ChunkRow(document_id=document.id, ordinal=ordinal, text=text, text_sha256=digest, title=path))
            vector = self.rng.standard_normal(DIMENSION).astype(np.float32)
            vector /= np.linalg.norm(vector)
            session.add(EmbeddingRow(text_sha256=digest, model=embedding_key(self.settings), vector=vector.tobytes()))

    def chunk_ids(self, path: str) -> set[int]:
        with self.sessions() as session:
            return set(session.scalars(select(ChunkRow.id).join(Document).where(Document.path == path)))

    def snapshot(self, version: int | None = None) -> Snapshot:
        if version is None:
            with self.sessions() as session:
                version = live_version(session)
        return Snapshot(version_folder(self.settings, version), self.settings)


def documents(count: int, chunks: int = 8, prefix: str = "doc") -> dict[str, int]:
    return {f"{prefix}-{i:03d}": chunks for i in range(count)}


def live_texts(corpus: Corpus, snapshot: Snapshot) -> list[str]:
    with corpus.sessions() as session:
        rows = {r.id: index_text(r.title, r.section, r.text) for r in session.scalars(select(ChunkRow))}
    return [rows[int(chunk_id)] for chunk_id in snapshot.chunk_ids[snapshot.live]]


def query_vectors(snapshot: Snapshot, count: int, seed: int = 11) -> np.ndarray:
    """Half random directions, half close to live rows (so the freshest segment's rows are among the answers)."""
    rng = np.random.default_rng(seed)
    near = np.asarray(snapshot.vectors[rng.choice(np.flatnonzero(snapshot.live), count // 2)])
    queries = np.concatenate(
        [
            rng.standard_normal((count - count // 2, DIMENSION)),
            near + 0.3 * rng.standard_normal(near.shape) / np.sqrt(DIMENSION),
        ]
    ).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def dense_ids(searcher: Searcher, snapshot: Snapshot, vector: np.ndarray, depth: int, allowed=None) -> list[int]:
    return [int(snapshot.chunk_ids[row]) for row in searcher._dense_rows(snapshot, vector, depth, allowed)]


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    return Corpus(Settings(data_dir=tmp_path, ann_min_chunks=100_000))


# ---------------------------------------------------------------- appending


def test_an_append_writes_one_segment_and_reuses_the_others(corpus):
    first = corpus.publish(documents(10))
    old = segment_folder(corpus.settings, f"s{first}")
    written = {path.name: path.stat().st_mtime_ns for path in old.rglob("*")}
    second = corpus.publish(documents(2, prefix="new"))

    manifest = read_manifest(corpus.settings, second)
    assert [s["name"] for s in manifest["segments"]] == [f"s{first}", f"s{second}"]
    assert manifest["segments"][0] == read_manifest(corpus.settings, first)["segments"][0]  # the same uid
    assert [s["rows"] for s in manifest["segments"]] == [80, 16] and manifest["deleted"] == 0
    assert {path.name: path.stat().st_mtime_ns for path in old.rglob("*")} == written  # referenced, not rewritten
    status = index_status(corpus.settings)
    assert (status.version, status.chunks, status.rows, status.deleted) == (second, 96, 96, 0)
    assert [(s.name, s.rows, s.deleted, s.dense) for s in status.segments] == [
        (f"s{first}", 80, 0, "exact"),
        (f"s{second}", 16, 0, "exact"),
    ]


def test_a_relabel_only_publish_shares_every_segment(corpus):
    first = corpus.publish(documents(3))
    with corpus.sessions.begin() as session:
        session.scalars(select(Document)).first().groups = ["hr"]
    second = corpus.publish()
    assert read_manifest(corpus.settings, second)["segments"] == read_manifest(corpus.settings, first)["segments"]
    assert ("hr",) in {doc.groups for doc in corpus.snapshot().documents.values()}


def test_replaced_and_removed_chunks_are_never_returned(corpus):
    corpus.publish(documents(10))
    replaced, removed = corpus.chunk_ids("doc-003"), corpus.chunk_ids("doc-007")
    old = corpus.snapshot()
    old_rows = np.flatnonzero(np.isin(old.chunk_ids, list(replaced | removed)))
    old_vectors, old_texts = np.asarray(old.vectors[old_rows]), live_texts(corpus, old)
    version = corpus.publish({"doc-003": 5}, remove=("doc-007",))

    snapshot = corpus.snapshot()
    assert read_manifest(corpus.settings, version)["deleted"] == 16 and len(snapshot) == 80 - 16 + 5
    gone = replaced | removed
    searcher = Searcher(corpus.settings)
    every = SearchFilter(groups=("everyone",))
    for vector, text in zip(old_vectors, old_texts[:16], strict=False):  # the deleted rows' own vector and text
        for search_filter in (SearchFilter(), every):
            found = searcher.candidates(snapshot, text, vector, 10, search_filter)
            returned = {int(snapshot.chunk_ids[row]) for row in found.rows}
            assert returned and not returned & gone
    doc_id = next(d.id for d in snapshot.documents.values() if d.path == "doc-003")
    only = searcher.candidates(snapshot, old_texts[0], old_vectors[0], 10, SearchFilter(document_ids=(doc_id,)))
    assert {int(snapshot.chunk_ids[row]) for row in only.rows} == corpus.chunk_ids("doc-003")


# ---------------------------------------------------------------- equal to one index


def test_bm25_over_segments_equals_bm25s_built_on_the_live_rows(corpus):
    corpus.publish(documents(20))
    corpus.publish(documents(5, chunks=6, prefix="b"))
    corpus.publish({"doc-004": 3, **documents(3, prefix="c")}, remove=("doc-010", "b-001"))
    snapshot = corpus.snapshot()
    assert len(snapshot.segments) == 3 and not snapshot.live.all()
    single = Bm25sIndex.build(live_texts(corpus, snapshot))
    matched = 0
    for question in questions():
        ours = snapshot.bm25.scores(question)
        assert not ours[~snapshot.live].any()  # deleted rows never score
        assert np.array_equal(ours[snapshot.live], single.scores(question)), question  # bit-equal
        matched += bool(ours.any())
    assert matched > 80


def test_both_bm25_backends_score_split_rows_as_one_index():
    texts = paragraphs()
    tokens = analyze_many(texts)
    live = np.ones(len(texts), dtype=bool)
    live[np.random.default_rng(5).choice(len(texts), 60, replace=False)] = False
    cuts = [0, 150, 160, 300, len(texts)]
    parts = [tokens[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    kept = [text for text, keep in zip(texts, live, strict=True) if keep]
    bm25s_split, bm25s_one = SegmentedBm25([TermCounts.build(p) for p in parts], live), Bm25sIndex.build(kept)
    rank_split, rank_one = SegmentedRankBm25(parts, live), RankBm25Index.build(kept)
    for question in questions():
        assert np.array_equal(bm25s_split.scores(question)[live], bm25s_one.scores(question))
        assert np.allclose(rank_split.scores(question)[live], rank_one.scores(question), rtol=0, atol=1e-6)


def test_exact_dense_search_equals_a_full_rebuild(corpus):
    corpus.publish(documents(30))
    for step in range(3):
        corpus.publish({f"doc-{step:03d}": 4, **documents(2, prefix=f"s{step}")}, remove=(f"doc-{20 + step:03d}",))
    segmented = corpus.snapshot()
    assert len(segmented.segments) == 4 and not segmented.live.all()
    rebuilt = corpus.snapshot(compact(corpus.settings))
    assert len(rebuilt.segments) == 1 and rebuilt.live.all()

    searcher = Searcher(corpus.settings)
    texts = questions()
    some = tuple(sorted(d.id for d in segmented.documents.values())[::3])
    for i, vector in enumerate(query_vectors(segmented, 40)):
        assert dense_ids(searcher, segmented, vector, 20) == dense_ids(searcher, rebuilt, vector, 20)
        for search_filter in (SearchFilter(), SearchFilter(document_ids=some)):
            ours = searcher.candidates(segmented, texts[i], vector, 10, search_filter)
            theirs = searcher.candidates(rebuilt, texts[i], vector, 10, search_filter)
            assert list(segmented.chunk_ids[ours.rows]) == list(rebuilt.chunk_ids[theirs.rows])
            assert np.array_equal(ours.dense, theirs.dense) and np.array_equal(ours.bm25, theirs.bm25)
            assert ours.dense_rank == theirs.dense_rank and ours.bm25_rank == theirs.bm25_rank


def test_hnsw_segments_find_what_a_rebuilt_hnsw_finds(tmp_path):
    corpus = Corpus(Settings(data_dir=tmp_path, ann_min_chunks=300, hnsw_ef_search=64))
    corpus.publish(documents(60))  # 480 rows: one HNSW segment
    corpus.publish(documents(3, prefix="new"), remove=("doc-001",))  # 24 rows: an exact segment beside it
    segmented = corpus.snapshot()
    assert [s.approximate for s in segmented.segments] == [True, False]
    rebuilt = corpus.snapshot(compact(corpus.settings))
    searcher = Searcher(corpus.settings)
    vectors = np.asarray(rebuilt.vectors)
    found = {"segments": 0, "rebuilt": 0}
    queries = query_vectors(segmented, 60)
    for vector in queries:
        truth = set(rebuilt.chunk_ids[np.argsort(-(vectors @ vector))[:10]].tolist())
        found["segments"] += len(truth & set(dense_ids(searcher, segmented, vector, 10)))
        found["rebuilt"] += len(truth & set(dense_ids(searcher, rebuilt, vector, 10)))
    assert found["segments"] >= 0.99 * found["rebuilt"], found


# ---------------------------------------------------------------- compaction and its policy


def test_compaction_merges_everything_into_one_segment_and_search_is_unchanged(corpus):
    corpus.publish(documents(8))
    corpus.publish({"doc-002": 3}, remove=("doc-005",))
    before = corpus.snapshot()
    version = compact(corpus.settings)
    status = index_status(corpus.settings)
    assert status.version == version and len(status.segments) == 1
    assert (status.rows, status.deleted, status.chunks) == (len(before), 0, len(before))
    after = corpus.snapshot()
    assert sorted(after.chunk_ids.tolist()) == sorted(before.chunk_ids[before.live].tolist())
    searcher = Searcher(corpus.settings)
    for vector, question in zip(query_vectors(before, 10), questions(), strict=False):
        ours = searcher.candidates(before, question, vector, 10, SearchFilter())
        theirs = searcher.candidates(after, question, vector, 10, SearchFilter())
        assert list(before.chunk_ids[ours.rows]) == list(after.chunk_ids[theirs.rows])
    assert sorted(p.name for p in (corpus.settings.index_dir / "segments").iterdir()) == sorted(
        {s["name"] for v in (version - 1, version) for s in read_manifest(corpus.settings, v)["segments"]}
    )  # the folders tidied away are exactly those no kept version uses


def test_the_policy_folds_the_smallest_segments_and_mostly_deleted_ones(tmp_path):
    corpus = Corpus(Settings(data_dir=tmp_path, index_max_segments=3, index_max_deleted_fraction=0.5))
    corpus.publish(documents(10))
    for step in range(4):
        corpus.publish(documents(1, chunks=2 + step, prefix=f"add{step}"))
    rows = [s["rows"] for s in read_manifest(corpus.settings, 5)["segments"]]
    assert len(rows) <= 3 and rows[0] == 80 and sum(rows) == 80 + 2 + 3 + 4 + 5
    # six of the base segment's ten documents replaced: more than half its rows deleted, so it is written again
    corpus.publish({f"doc-{i:03d}": 8 for i in range(6)})
    manifest = read_manifest(corpus.settings, 6)
    assert manifest["deleted"] == 0 and len(manifest["segments"]) <= 3
    assert manifest["chunks"] == 80 + 14


def test_crossing_the_hnsw_threshold_rebuilds_into_one_approximate_segment(tmp_path):
    corpus = Corpus(Settings(data_dir=tmp_path, ann_min_chunks=100))
    corpus.publish(documents(10))  # 80 rows: exact
    corpus.publish(documents(3, prefix="new"))  # 104: the settings now describe an HNSW index
    manifest = read_manifest(corpus.settings, 2)
    assert [s["approximate"] for s in manifest["segments"]] == [True] and manifest["approximate"] is True


# ---------------------------------------------------------------- crash safety and format


KILL_SCRIPT = """
import sys, time
from pathlib import Path
import retrieval.indexer as indexer
from penny import Settings

original = indexer.write_version
def stall(*args, **kwargs):
    folder = original(*args, **kwargs)
    Path(sys.argv[2]).write_text(str(folder))  # segment and version written; the catalogue commit comes next
    time.sleep(120)
    return folder
indexer.write_version = stall
indexer.compact(Settings(data_dir=Path(sys.argv[1])))
"""


@pytest.mark.slow
def test_a_compaction_killed_before_its_commit_leaves_the_old_version_serving(corpus, tmp_path):
    corpus.publish(documents(6))
    live = corpus.publish(documents(2, prefix="new"), remove=("doc-001",))
    before = corpus.snapshot()
    marker = tmp_path / "written"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    job = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(corpus.settings.data_dir), str(marker)], env=env)
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the compaction never reached its commit"
    job.send_signal(signal.SIGKILL)
    job.wait()

    orphan = segment_folder(corpus.settings, f"s{live + 1}")
    assert orphan.exists() and version_folder(corpus.settings, live + 1).exists()
    with corpus.sessions() as session:
        assert live_version(session) == live
    searcher = Searcher(corpus.settings)
    snapshot = searcher.snapshot()
    assert snapshot.version == live and list(snapshot.chunk_ids) == list(before.chunk_ids)
    vector = query_vectors(snapshot, 2)[1]
    assert dense_ids(searcher, snapshot, vector, 5)

    version = compact(corpus.settings)  # the next writer takes the number over and tidies what nobody uses
    assert version == live + 1 and len(corpus.snapshot().segments) == 1
    used = {s["name"] for v in (live, version) for s in read_manifest(corpus.settings, v)["segments"]}
    assert {p.name for p in (corpus.settings.index_dir / "segments").iterdir()} == used


def test_an_index_of_the_old_format_is_refused_with_the_command_that_rebuilds_it(corpus):
    version = corpus.publish(documents(4))
    manifest_path = version_folder(corpus.settings, version) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    old = {
        key: manifest[key]
        for key in ("version", "chunks", "dimension", "embedding_model", "bm25_backend", "approximate", "build")
    }
    manifest_path.write_text(json.dumps({**old, "format": 1}))  # what a Penny before segments wrote
    with pytest.raises(IndexUnavailable) as refused:
        Searcher(corpus.settings).snapshot()
    assert refused.value.code == "index_format_outdated"
    assert "format 1" in str(refused.value) and "`penny index compact`" in str(refused.value)
    assert index_status(corpus.settings).format == 1

    env = {
        **os.environ,
        "PENNY_DATA_DIR": str(corpus.settings.data_dir),
        "PENNY_ANN_MIN_CHUNKS": "100000",
        "PYTHONPATH": str(ROOT),
    }
    cli = [sys.executable, "-m", "api", "index"]
    refused_cli = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert refused_cli.returncode == 0 and "format 1" in refused_cli.stdout
    compacted = subprocess.run([*cli, "compact"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert compacted.returncode == 0, compacted.stderr
    assert f"index version {version + 1}" in compacted.stdout
    status = json.loads(
        subprocess.run([*cli, "status", "--json"], env=env, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    )
    assert (status["format"], status["chunks"], len(status["segments"])) == (2, 32, 1)
    assert len(Searcher(corpus.settings).snapshot()) == 32


# ---------------------------------------------------------------- real ingestion


@pytest.mark.slow
def test_reingesting_a_changed_file_adds_one_segment_and_deletes_its_old_chunks(tmp_path):
    from ingest.pipeline import IngestRequest, ingest

    files = tmp_path / "files"
    files.mkdir()
    (files / "parking.md").write_text("# Parking\n\nBicycles are parked in the basement garage beside the lifts.")
    (files / "laptops.md").write_text("# Laptops\n\nNew starters collect a laptop from the IT desk on day one.")
    (files / "badges.md").write_text("# Badges\n\nReception issues building badges after the safety briefing.")
    (files / "printers.md").write_text("# Printers\n\nEach floor has one colour printer next to the kitchen.")
    (files / "lunch.md").write_text("# Lunch\n\nThe canteen serves hot lunches from noon until two o'clock.")
    settings = Settings(data_dir=tmp_path / "data")
    first = ingest(settings, IngestRequest(paths=[files]))
    (files / "parking.md").write_text("# Parking\n\nCars are parked on level minus two; bicycles stay outside.")
    second = ingest(settings, IngestRequest(paths=[files]))
    assert (second.updated, second.unchanged) == (1, 4)

    manifest = read_manifest(settings, second.index_version)
    assert [s["name"] for s in manifest["segments"]] == [f"s{first.index_version}", f"s{second.index_version}"]
    assert manifest["deleted"] == 1 and manifest["chunks"] == 5  # one file in five replaced: under the fold share
    searcher = Searcher(settings)
    result = searcher.search("where are bicycles parked", k=5)
    texts = [p.chunk.text for p in result.passages]
    assert any("level minus two" in text for text in texts) and not any("basement" in text for text in texts)


@pytest.mark.slow
def test_an_unchanged_ingest_rebuilds_an_index_of_the_old_format(tmp_path):
    from ingest.pipeline import IngestRequest, ingest

    files = tmp_path / "files"
    files.mkdir()
    (files / "parking.md").write_text("# Parking\n\nBicycles are parked in the basement garage beside the lifts.")
    settings = Settings(data_dir=tmp_path / "data")
    first = ingest(settings, IngestRequest(paths=[files]))
    manifest_path = version_folder(settings, first.index_version) / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "format": 1}))
    again = ingest(settings, IngestRequest(paths=[files]))
    assert (again.unchanged, again.chunks_embedded, again.index_version) == (1, 0, first.index_version + 1)
    assert Searcher(settings).search("bicycle parking").passages
    assert ingest(settings, IngestRequest(paths=[files])).index_version is None  # healed: nothing more to do
