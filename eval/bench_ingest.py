"""Ingestion benchmark: a full ingest of a folder into an empty data directory, then an unchanged re-run, then
the two BM25 backends side by side on the chunks it made.

    python -m eval.bench_ingest [FOLDER] [--limit N]

FOLDER defaults to ../shared/data/ocp-4.15/docs. Each ingest runs as a `penny ingest --json` subprocess so its
peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.metrics import percentile

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO.parent / "shared" / "data" / "ocp-4.15" / "docs"


def run_ingest(folder: Path, data_dir: Path) -> tuple[dict, float, float]:
    """(job report, wall seconds, peak RSS in MB of the ingest process)."""
    env = {**os.environ, "PENNY_DATA_DIR": str(data_dir)}
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [str(Path(sys.executable).with_name("penny")), "ingest", str(folder), "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"penny ingest failed ({done.returncode}):\n{done.stderr[-3000:]}")
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return json.loads(done.stdout), wall, max(peak, before) / 1024


def sample_folder(folder: Path, limit: int, into: Path) -> Path:
    files = sorted(p for p in folder.rglob("*") if p.is_file())[:limit]
    for path in files:
        target = into / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return into


def bm25_side_by_side(data_dir: Path, queries: list[str]) -> list[tuple[str, float, float, float]]:
    """(backend, build seconds, p50 ms, p95 ms) for each BM25 backend over the live version's chunk texts."""
    os.environ["PENNY_DATA_DIR"] = str(data_dir)
    from penny import get_settings
    from retrieval.bm25 import build_bm25
    from retrieval.catalogue import ChunkRow, open_catalogue
    from retrieval.indexer import index_text

    with open_catalogue(get_settings())() as session:
        texts = [index_text(c.title, c.section, c.text) for c in session.query(ChunkRow).order_by(ChunkRow.id)]
    rows = []
    for backend in ("bm25s", "rank-bm25"):
        started = time.perf_counter()
        index = build_bm25(texts, backend)
        build = time.perf_counter() - started
        timings = []
        for query in queries:
            started = time.perf_counter()
            scores = index.scores(query)
            np.argpartition(-scores, 10)[:10]
            timings.append((time.perf_counter() - started) * 1000)
        rows.append((backend, build, percentile(timings, 50), percentile(timings, 95)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--limit", type=int, default=0, help="ingest only the first N files (sorted)")
    parser.add_argument("--queries", type=int, default=200, help="BM25 queries to time per backend")
    args = parser.parse_args()
    if not args.folder.exists():
        sys.exit(f"{args.folder} does not exist (the shared evaluation data is not here)")
    work = Path(tempfile.mkdtemp(prefix="penny-bench-ingest-"))
    folder = sample_folder(args.folder, args.limit, work / "docs") if args.limit else args.folder
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    megabytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    data_dir = work / "data"
    first, first_wall, first_rss = run_ingest(folder, data_dir)
    second, second_wall, _ = run_ingest(folder, data_dir)
    index_bytes = sum(p.stat().st_size for p in (data_dir / "index").rglob("*") if p.is_file())
    db_bytes = sum(p.stat().st_size for p in data_dir.glob("catalogue.db*"))
    chunks = first["chunks_added"]
    print(f"corpus: {folder}  ({files} files, {megabytes:.1f} MB)")
    print(
        f"full ingest:      {first_wall:8.1f} s wall  {chunks} chunks  {chunks / first_wall:6.1f} chunks/s  "
        f"{files / first_wall:5.2f} files/s  peak RSS {first_rss:,.0f} MB"
    )
    print(f"  stages (s):     {first['seconds']}  embedded {first['chunks_embedded']} unique chunk texts")
    print(f"  failed/skipped: {first['failed']}/{first['skipped']}")
    kept = second["index_version"] or "kept"
    ratio = second_wall / first_wall
    print(
        f"unchanged re-run: {second_wall:8.1f} s wall  ({second['unchanged']} unchanged, index version {kept})  "
        f"ratio {ratio:.3f} of full"
    )
    print(f"on disk: index {index_bytes / 1e6:.1f} MB, catalogue {db_bytes / 1e6:.1f} MB")
    queries_file = folder.parent / "queries.jsonl"
    if queries_file.exists():
        queries = [json.loads(line)["text"] for line in queries_file.open()][: args.queries]
    else:
        queries = ["how do I configure the network", "install on bare metal", "rotate certificates"] * 20
    print(f"BM25 backends over {chunks} chunks, {len(queries)} queries (same run):")
    rows = bm25_side_by_side(data_dir, queries)
    for backend, build, p50, p95 in rows:
        print(f"  {backend:<10} build {build:6.1f} s   query p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    print(f"  rank-bm25 / bm25s query p50 ratio: {rows[1][2] / rows[0][2]:.1f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
