"""Retrieval runs over the dev sets, shared by the benchmark scripts: every query's candidates with both rankers'
scores (cached on disk), and the confidence model's training rows and calibration table."""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from eval.datasets import Query
from eval.retrieval_devsets import CACHE, DevSet, document_ids_by_path
from retrieval.candidates import Candidates
from retrieval.catalogue import ChunkRow, Document, open_catalogue
from retrieval.confidence import FEATURES, features_from_candidates
from retrieval.fusion import FusionMethod, fuse_scores
from retrieval.search import Searcher, SearchFilter

# ---------------------------------------------------------------- one candidate set per query


@dataclass
class QueryRun:
    query: Query
    search_filter: SearchFilter
    candidates: Candidates
    ids: list[str]  # corpus id (or document path) of each candidate
    keys: np.ndarray  # text key of each candidate, to fold duplicate passages as search does
    texts: list[str]  # chunk text of each candidate (for answer-labelled sets and confidence features)
    titles: list[str]


@dataclass
class RowInfo:
    ids: list[str]
    texts: list[str]
    titles: list[str]


def row_info(devset: DevSet, searcher: Searcher) -> RowInfo:
    """Corpus id, text and heading of every index row of the set's live snapshot."""
    snapshot = searcher.snapshot()
    with open_catalogue(devset.settings)() as session:
        rows = {
            row.id: (path, row.text, row.section or row.title)
            for row, path in session.execute(select(ChunkRow, Document.path).join(Document))
        }
    prefix = devset.dataset.record_path("")
    ids, texts, titles = [], [], []
    for chunk_id in snapshot.chunk_ids:
        path, text, title = rows.get(int(chunk_id), ("", "", ""))  # "": a row the version deleted
        ids.append(path.removeprefix(prefix) if path.startswith(prefix) else path)
        texts.append(text)
        titles.append(title)
    return RowInfo(ids, texts, titles)


def collect(devset: DevSet, searcher: Searcher, k: int = 10) -> list[QueryRun]:
    snapshot = searcher.snapshot()
    info = row_info(devset, searcher)
    by_path = document_ids_by_path(devset.settings)
    vectors = searcher.embedder.embed([q.text for q in devset.queries])
    runs = []
    for query, vector in zip(devset.queries, vectors, strict=True):
        search_filter = devset.filter_for(query, by_path) or SearchFilter()
        candidates = searcher.candidates(snapshot, query.text, vector, k, search_filter)
        rows = candidates.rows
        runs.append(
            QueryRun(
                query=query,
                search_filter=search_filter,
                candidates=candidates,
                ids=[info.ids[r] for r in rows],
                keys=snapshot.text_keys[rows],
                texts=[info.texts[r] for r in rows],
                titles=[info.titles[r] for r in rows],
            )
        )
    return runs


def collect_cached(devset: DevSet, searcher: Searcher) -> list[QueryRun]:
    """collect(), kept under the bench cache keyed by set, index version, depth and queries, so reruns are quick."""
    snapshot = searcher.snapshot()
    key = hashlib.sha256(
        json.dumps(
            [devset.name, snapshot.version, searcher.settings.candidates, [q.id for q in devset.queries]]
        ).encode()
    ).hexdigest()[:16]
    path = CACHE / f"runs-v2-{key}.pkl"  # v2: QueryRun moved to this module
    if path.exists():
        return pickle.loads(path.read_bytes())
    runs = collect(devset, searcher)
    path.write_bytes(pickle.dumps(runs))
    return runs


def ranked_positions(run: QueryRun, scores: np.ndarray, k: int = 10) -> list[int]:
    seen: set[int] = set()
    order = []
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] == -np.inf:
            break
        key = int(run.keys[i])
        if key not in seen:
            seen.add(key)
            order.append(int(i))
            if len(order) == k:
                break
    return order


# ---------------------------------------------------------------- confidence calibration


def confidence_rows(devset: DevSet, runs: list[QueryRun], method: FusionMethod) -> tuple[np.ndarray, np.ndarray]:
    """One feature row per query with label 1 when the top passage is relevant (qrels sets only)."""
    xs, ys = [], []
    for run in runs:
        scores = fuse_scores(run.candidates, method, run.query.text)
        order = ranked_positions(run, scores)
        if not order:
            continue
        values = features_from_candidates(
            run.query.text, run.candidates, scores, order, run.texts[order[0]] + " " + run.titles[order[0]]
        )
        xs.append([values[name] for name in FEATURES])
        ys.append(1.0 if devset.dataset.qrels[run.query.id].get(run.ids[order[0]], 0) > 0 else 0.0)
    return np.array(xs), np.array(ys)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> tuple[float, list[tuple]]:
    """Expected calibration error over equal-width bins, and the table (range, count, mean confidence, accuracy)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    ece, table = 0.0, []
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        confidence, accuracy = float(probabilities[inside].mean()), float(labels[inside].mean())
        ece += inside.mean() * abs(confidence - accuracy)
        table.append((f"{edges[b]:.1f}-{edges[b + 1]:.1f}", int(inside.sum()), confidence, accuracy))
    return float(ece), table
