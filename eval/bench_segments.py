"""Appending a few files to a large index: time to live with segments against a full rebuild, side by side.

    python -m eval.bench_segments [--rows 100000 1000000] [--kinds exact hnsw] [--files 10] [--queries 200]

For each size and dense index kind, in one data directory: a synthetic catalogue of ROWS chunks (8 per document,
384-dimensional unit vectors around 2,000 topic centres, texts of 40 words drawn from a Zipf-distributed
vocabulary of 30,000) is published once as the base version. Then:

- segments: FILES new documents (8 chunks each, vectors near existing rows) are stored and published the way an
  ingestion job publishes (`publish_version`: one new segment, the base reused) and committed; a Searcher that
  was serving the base then loads the new version (reading only the new segment). Time to live = publish +
  commit + that load.
- full rebuild: the same rows published as every job published before segments (`publish_version(merge_all=
  True)`: every row and vector read from the catalogue, one dense index and one BM25 index built over all of
  them), then loaded by the Searcher (nothing to share).

Then both versions are searched with the same queries (half near the appended rows): exact search must return
the rebuild's top 10 (and the same hybrid candidates with the same scores); HNSW recall@10 against brute force
must be at least 0.99 of the rebuild's. Embedding is not timed: it costs the same either way (per new chunk).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from penny import Settings
from retrieval.build import chunking_key
from retrieval.catalogue import ChunkRow, Document, EmbeddingRow, open_catalogue
from retrieval.embedder import embedding_key
from retrieval.indexer import index_text, publish_version, text_sha256, tidy_versions
from retrieval.search import Searcher, SearchFilter
from retrieval.snapshot import Snapshot, version_folder

console = Console(width=200)
DIMENSION = 384
CHUNKS_PER_FILE = 8
VOCABULARY = np.array([f"term{i}" for i in range(30_000)])
WORDS_PER_CHUNK = 40
INSERT_BATCH = 20_000


@dataclass
class Synthetic:
    """Vectors and texts by chunk id (row i is chunk i + 1), generated from one seed."""

    rng: np.random.Generator
    centres: np.ndarray
    vectors: np.ndarray
    texts: list[str]

    @classmethod
    def make(cls, rows: int, seed: int = 7) -> Synthetic:
        rng = np.random.default_rng(seed)
        centres = _unit(rng.standard_normal((2_000, DIMENSION)).astype(np.float32))
        vectors = np.empty((rows, DIMENSION), dtype=np.float32)
        for start in range(0, rows, 100_000):
            size = min(100_000, rows - start)
            vectors[start : start + size] = _near(rng, centres[rng.integers(0, len(centres), size)], 0.75)
        return cls(rng, centres, vectors, [_text(rng, i) for i in range(rows)])


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _near(rng: np.random.Generator, points: np.ndarray, noise: float) -> np.ndarray:
    return _unit(points + rng.standard_normal(points.shape).astype(np.float32) * (noise / np.sqrt(DIMENSION)))


def _text(rng: np.random.Generator, row: int) -> str:
    words = VOCABULARY[np.minimum(rng.zipf(1.3, WORDS_PER_CHUNK), len(VOCABULARY)) - 1]
    return f"chunk {row} " + " ".join(words)


def store(settings: Settings, first_row: int, texts: list[str], vectors: np.ndarray, with_embeddings: bool) -> None:
    """Documents of 8 chunks with ids first_row + 1 ... (and their embeddings), as ingestion leaves them."""
    sessions = open_catalogue(settings)
    chunking, model = chunking_key(settings), embedding_key(settings)
    for start in range(0, len(texts), INSERT_BATCH):
        rows = range(first_row + start, first_row + min(start + INSERT_BATCH, len(texts)))
        hashes = [text_sha256(index_text(f"doc {r // CHUNKS_PER_FILE}", "", texts[r - first_row])) for r in rows]
        with sessions.begin() as session:
            documents = sorted({r // CHUNKS_PER_FILE for r in rows})
            session.execute(
                insert(Document),
                [
                    {
                        "id": d + 1,
                        "path": f"synthetic://{d}",
                        "sha256": "",
                        "size": 0,
                        "mtime": 0.0,
                        "title": f"doc {d}",
                        "doc_type": "txt",
                        "groups": ["everyone"],
                        "status": "indexed",
                        "chunking": chunking,
                        "chunk_count": CHUNKS_PER_FILE,
                    }
                    for d in documents
                ],
            )
            session.execute(
                insert(ChunkRow),
                [
                    {
                        "id": r + 1,
                        "document_id": r // CHUNKS_PER_FILE + 1,
                        "ordinal": r % CHUNKS_PER_FILE,
                        "text": texts[r - first_row],
                        "text_sha256": h,
                        "title": f"doc {r // CHUNKS_PER_FILE}",
                    }
                    for r, h in zip(rows, hashes, strict=True)
                ],
            )
            if with_embeddings:
                session.execute(
                    insert(EmbeddingRow),
                    [
                        {"text_sha256": h, "model": model, "vector": vectors[r - first_row].tobytes()}
                        for r, h in zip(rows, hashes, strict=True)
                    ],
                )


def timed_publish(settings: Settings, dimension: int, merge_all: bool) -> tuple[int, float]:
    sessions = open_catalogue(settings)
    started = time.perf_counter()
    with sessions.begin() as session:
        version = publish_version(session, settings, dimension, None, merge_all=merge_all)
    seconds = time.perf_counter() - started
    tidy_versions(sessions, settings)
    return version, seconds


def timed_load(searcher: Searcher) -> tuple[Snapshot, float]:
    started = time.perf_counter()
    snapshot = searcher.snapshot()
    return snapshot, time.perf_counter() - started


@dataclass
class Outcome:
    rows: int
    kind: str
    base_seconds: float
    segment_publish: float
    segment_load: float
    rebuild_publish: float
    rebuild_load: float
    check: str
    passed: bool
    peak_mb: float


def run_one(rows: int, kind: str, files: int, queries: int, folder: Path) -> Outcome:
    ann_min_chunks = 10**9 if kind == "exact" else min(Settings().ann_min_chunks, rows // 2)
    settings = Settings(data_dir=folder, ann_min_chunks=ann_min_chunks)
    console.print(f"[bold]{rows:,} rows, {kind}[/bold]: generating and storing the catalogue")
    data = Synthetic.make(rows)
    store(settings, 0, data.texts, data.vectors, with_embeddings=True)
    _, base_seconds = timed_publish(settings, DIMENSION, merge_all=True)
    searcher = Searcher(settings)
    base, _ = timed_load(searcher)
    console.print(f"  base version published in {base_seconds:.1f} s ({len(base):,} chunks)")

    added = files * CHUNKS_PER_FILE
    new_vectors = _near(data.rng, data.vectors[data.rng.integers(0, rows, added)], 0.5)
    new_texts = [_text(data.rng, rows + i) for i in range(added)]
    store(settings, rows, new_texts, new_vectors, with_embeddings=True)
    segmented_version, segment_publish = timed_publish(settings, DIMENSION, merge_all=False)
    segmented, segment_load = timed_load(searcher)
    assert segmented.version == segmented_version and len(segmented.segments) == 2, "the append made no segment"
    console.print(f"  segments: published in {segment_publish:.2f} s, loaded in {segment_load:.2f} s")

    _, rebuild_publish = timed_publish(settings, DIMENSION, merge_all=True)
    rebuilt, rebuild_load = timed_load(searcher)
    console.print(f"  full rebuild: published in {rebuild_publish:.1f} s, loaded in {rebuild_load:.1f} s")
    segmented = Snapshot(version_folder(settings, segmented_version), settings)

    all_vectors = np.concatenate([data.vectors, new_vectors])
    query_vectors = np.concatenate(
        [
            _near(data.rng, new_vectors[data.rng.integers(0, added, queries // 2)], 0.5),
            _near(data.rng, data.centres[data.rng.integers(0, len(data.centres), queries - queries // 2)], 1.0),
        ]
    )
    query_texts = [" ".join(VOCABULARY[data.rng.integers(0, 2_000, 3)]) for _ in range(queries)]
    if kind == "exact":
        passed, check = exact_equal(searcher, segmented, rebuilt, query_vectors, query_texts)
    else:
        passed, check = recall_ratio(searcher, segmented, rebuilt, query_vectors, all_vectors)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Outcome(
        rows, kind, base_seconds, segment_publish, segment_load, rebuild_publish, rebuild_load, check, passed, peak
    )


def _top_ids(searcher: Searcher, snapshot: Snapshot, vector: np.ndarray, k: int = 10) -> list[int]:
    return [int(snapshot.chunk_ids[row]) for row in searcher._dense_rows(snapshot, vector, k, None)]


def exact_equal(searcher, segmented, rebuilt, vectors, texts) -> tuple[bool, str]:
    """Every query's dense top 10, and its hybrid candidates with both scores, as the rebuild's."""
    same = 0
    for vector, text in zip(vectors, texts, strict=True):
        ours = searcher.candidates(segmented, text, vector, 10, SearchFilter())
        theirs = searcher.candidates(rebuilt, text, vector, 10, SearchFilter())
        same += (
            _top_ids(searcher, segmented, vector) == _top_ids(searcher, rebuilt, vector)
            and list(segmented.chunk_ids[ours.rows]) == list(rebuilt.chunk_ids[theirs.rows])
            and np.array_equal(ours.dense, theirs.dense)
            and np.array_equal(ours.bm25, theirs.bm25)
        )
    return same == len(vectors), f"{same}/{len(vectors)} equal"


def recall_ratio(searcher, segmented, rebuilt, vectors, all_vectors) -> tuple[bool, str]:
    """recall@10 against brute force of both, and their ratio (target >= 0.99)."""
    found = {"segments": 0, "rebuilt": 0}
    for vector in vectors:
        truth = set((np.argpartition(-(all_vectors @ vector), 10)[:10] + 1).tolist())  # chunk id = row + 1
        found["segments"] += len(truth & set(_top_ids(searcher, segmented, vector)))
        found["rebuilt"] += len(truth & set(_top_ids(searcher, rebuilt, vector)))
    ours, theirs = found["segments"] / (10 * len(vectors)), found["rebuilt"] / (10 * len(vectors))
    ratio = ours / theirs if theirs else 0.0
    return ratio >= 0.99, f"R@10 {ours:.4f}/{theirs:.4f}={ratio:.3f}"


def print_outcomes(outcomes: list[Outcome], files: int) -> None:
    table = Table(
        "chunks",
        "dense",
        "base build s",
        "segments: publish s",
        "load s",
        "time to live s",
        "rebuild: publish s",
        "load s",
        "time to live s",
        "speed-up",
        "results vs rebuild",
        "peak RSS MB",
        title=f"appending {files} files ({files * CHUNKS_PER_FILE} chunks): segments against a full rebuild",
    )
    for o in outcomes:
        segments, rebuild = o.segment_publish + o.segment_load, o.rebuild_publish + o.rebuild_load
        table.add_row(
            f"{o.rows:,}",
            o.kind,
            f"{o.base_seconds:.1f}",
            f"{o.segment_publish:.2f}",
            f"{o.segment_load:.2f}",
            f"{segments:.2f}",
            f"{o.rebuild_publish:.1f}",
            f"{o.rebuild_load:.2f}",
            f"{rebuild:.1f}",
            f"{rebuild / segments:.0f}x",
            ("ok: " if o.passed else "FAILED: ") + o.check,
            f"{o.peak_mb:,.0f}",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", choices=["exact", "hnsw"], default=["exact", "hnsw"])
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None, help="where the data directories go (default: /tmp)")
    args = parser.parse_args()
    outcomes = []
    for rows in args.rows:
        for kind in args.kinds:
            folder = Path(tempfile.mkdtemp(prefix=f"bench-segments-{rows}-{kind}-", dir=args.workdir))
            try:
                outcomes.append(run_one(rows, kind, args.files, args.queries, folder))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    print_outcomes(outcomes, args.files)
    if not all(o.passed for o in outcomes):
        raise SystemExit("search after appends differs from a full rebuild")


if __name__ == "__main__":
    main()
