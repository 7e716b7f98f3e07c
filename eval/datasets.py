"""The BEIR-like evaluation sets in ../shared/data: corpus, queries, qrels and reference answers.

    dataset = load_beir(shared_data_dir() / "tatqa-dev")
    dataset.corpus            # list[Record]  (ingest with ingest.records.ingest_records)
    dataset.queries           # dict[qid, Query]  (Query.text, Query.metadata)
    dataset.qrels             # dict[qid, dict[corpus id, score]]  (empty for ocp-4.15)
    dataset.answers           # dict[qid, list[str]]
    dataset.scope_of(qid)     # the scope's corpus ids (TAT-QA: the question's report), or None
    dataset.docs_dir          # ocp-4.15: the folder of plain-text documents, else None

Nothing here is copied into the repository: the data stays in ../shared/data.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ingest.records import Record, record_path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data relative to the repository root (it may be absent: callers skip then)."""
    return (REPO_ROOT.parent / "shared" / "data").resolve()


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str | None:
        """TAT-QA: the id of the report (its table) the question belongs to."""
        return self.metadata.get("scope") or None


@dataclass
class Dataset:
    name: str
    folder: Path
    corpus: list[Record]
    corpus_metadata: dict[str, dict[str, Any]]
    queries: dict[str, Query]
    qrels: dict[str, dict[str, int]]
    answers: dict[str, list[str]]

    @property
    def docs_dir(self) -> Path | None:
        docs = self.folder / "docs"
        return docs if docs.is_dir() else None

    @property
    def has_qrels(self) -> bool:
        return bool(self.qrels)

    @cached_property
    def _scopes(self) -> dict[str, tuple[str, ...]]:
        """Scope id -> corpus ids in it (TAT-QA records carry the report's id as metadata.context)."""
        members: dict[str, list[str]] = defaultdict(list)
        for record_id, metadata in self.corpus_metadata.items():
            context = metadata.get("context")
            if context:
                members[context].append(record_id)
        return {scope: tuple(ids) for scope, ids in members.items()}

    def scope_of(self, query_id: str) -> tuple[str, ...] | None:
        """The corpus ids a scoped question may be answered from, or None when the question has no scope."""
        scope = self.queries[query_id].scope
        if scope is None:
            return None
        return self._scopes.get(scope, (scope,))

    def labelled_queries(self) -> list[Query]:
        """Queries with at least one relevant passage (all queries when the set has no qrels)."""
        if not self.qrels:
            return list(self.queries.values())
        return [query for qid, query in self.queries.items() if any(s > 0 for s in self.qrels.get(qid, {}).values())]

    def record_path(self, record_id: str, source: str | None = None) -> str:
        """The document path ingest_records gives a corpus record of this set (source defaults to the set name)."""
        return record_path(source or self.name, record_id)


def load_beir(folder: Path | str, name: str | None = None) -> Dataset:
    """Load one set; missing files give empty parts (ocp-4.15 has no corpus.jsonl and no qrels)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no evaluation set at {folder}")
    corpus, corpus_metadata = [], {}
    for row in _jsonl(folder / "corpus.jsonl"):
        record_id = str(row["_id"])
        corpus.append(Record(id=record_id, title=row.get("title") or "", text=row.get("text") or ""))
        corpus_metadata[record_id] = row.get("metadata") or {}
    queries = {
        str(row["_id"]): Query(id=str(row["_id"]), text=row["text"], metadata=row.get("metadata") or {})
        for row in _jsonl(folder / "queries.jsonl")
    }
    answers = {str(row["_id"]): [str(a) for a in row.get("answers", [])] for row in _jsonl(folder / "answers.jsonl")}
    return Dataset(
        name=name or folder.name,
        folder=folder,
        corpus=corpus,
        corpus_metadata=corpus_metadata,
        queries=queries,
        qrels=_qrels(folder / "qrels.tsv"),
        answers=answers,
    )


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if len(row) < 3 or row[0] == "query-id":
                continue
            qrels[row[0]][row[1]] = int(float(row[2]))
    return dict(qrels)
