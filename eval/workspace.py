"""An evaluation set made ready to answer: its questions in one shape, and its corpus ingested into a throw-away
data directory that is cached by content hash, so a second run over the same corpus starts at once.

Two layouts are read:
- BEIR-like (`../shared/data/*`): `corpus.jsonl` or a `docs/` folder, `queries.jsonl`, optional `qrels.tsv` and
  `answers.jsonl` (loaded by eval.datasets);
- the project's `data/`: `corpus/` files and `sample-questions.jsonl` (`id`, `question`, `answer`, `sources` relative
  to `corpus/`, `kind` single|multi|unanswerable); `sources` become document-level qrels.

Every question names its relevant documents and its scope by a *document key*: the corpus id for records
(`record://SET/ID`) and the path relative to the corpus folder for files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from eval.datasets import load_beir
from ingest.parse import PARSER_VERSION
from ingest.pipeline import IngestRequest, ingest
from ingest.records import Record, ingest_records, record_path
from penny import BadInput, Settings
from retrieval.catalogue import Document, open_catalogue

SAMPLE_QUESTIONS = "sample-questions.jsonl"
# ingestion settings that change what the index holds: a different value needs a different cached data directory
_INDEX_SETTINGS = (
    "embedding_model",
    "chunk_max_tokens",
    "chunk_overlap_tokens",
    "bm25_backend",
    "ann_min_chunks",
    "sentence_vectors",
)


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    text: str
    answers: tuple[str, ...]
    relevant: dict[str, int] = field(default_factory=dict)  # document key -> graded relevance
    scope: tuple[str, ...] | None = None  # document keys the question may be answered from
    unanswerable: bool = False
    kind: str = ""


@dataclass
class EvalSet:
    name: str
    questions: list[EvalQuestion]
    has_qrels: bool
    records: list[Record] = field(default_factory=list)  # corpus lines, or
    files_root: Path | None = None  # a folder of documents

    def document_key(self, source_path: str) -> str:
        """The key a retrieved chunk's document has in this set's qrels and scopes."""
        prefix = record_path(self.name, "")
        if source_path.startswith(prefix):
            return source_path[len(prefix) :]
        if self.files_root is not None:
            root = str(self.files_root.resolve())
            if source_path.startswith(root + os.sep):
                return source_path[len(root) + 1 :]
        return source_path

    def document_path(self, key: str) -> str:
        """The catalogue path of the document with this key (the inverse of document_key)."""
        if self.files_root is not None:
            return str((self.files_root / key).resolve())
        return record_path(self.name, key)

    def fingerprint(self, settings: Settings) -> str:
        """A hash of the corpus content and of the settings that shape the index."""
        digest = hashlib.sha256()
        digest.update(self.name.encode())
        if self.files_root is not None:  # records are never parsed
            digest.update(f"parser={PARSER_VERSION}\n".encode())
        for name in _INDEX_SETTINGS:
            digest.update(f"{name}={getattr(settings, name)}\n".encode())
        for record in self.records:
            digest.update(json.dumps([record.id, record.title, record.text]).encode())
        if self.files_root is not None:
            for path in sorted(p for p in self.files_root.rglob("*") if p.is_file() and not p.name.startswith(".")):
                digest.update(str(path.relative_to(self.files_root)).encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()[:16]


def load_eval_set(folder: Path) -> EvalSet:
    """Read either layout; a clear error when the folder is neither."""
    folder = Path(folder).resolve()
    if (folder / SAMPLE_QUESTIONS).exists():
        return _load_project_data(folder)
    if (folder / "queries.jsonl").exists():
        return _load_beir(folder)
    raise BadInput(
        f"{folder} is not an evaluation set: expected queries.jsonl (with corpus.jsonl or docs/) "
        f"or {SAMPLE_QUESTIONS} with corpus/"
    )


def _load_beir(folder: Path) -> EvalSet:
    dataset = load_beir(folder)
    if not dataset.corpus and dataset.docs_dir is None:
        raise BadInput(f"{folder} has queries.jsonl but neither corpus.jsonl nor a docs/ folder")
    questions = [
        EvalQuestion(
            id=qid,
            text=query.text,
            answers=tuple(dataset.answers.get(qid, ())),
            relevant={key: grade for key, grade in dataset.qrels.get(qid, {}).items() if grade > 0},
            scope=dataset.scope_of(qid),
            unanswerable=query.metadata.get("kind") == "unanswerable",
            kind=str(query.metadata.get("kind") or query.metadata.get("answer_type") or ""),
        )
        for qid, query in dataset.queries.items()
    ]
    docs = dataset.docs_dir
    return EvalSet(
        name=dataset.name,
        questions=questions,
        has_qrels=dataset.has_qrels,
        records=[] if docs else dataset.corpus,
        files_root=docs,
    )


def _load_project_data(folder: Path) -> EvalSet:
    corpus = folder / "corpus"
    if not corpus.is_dir():
        raise BadInput(f"{folder} has {SAMPLE_QUESTIONS} but no corpus/ folder")
    questions = []
    with open(folder / SAMPLE_QUESTIONS, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            kind = row.get("kind", "single")
            answer = row.get("answer") or ""
            questions.append(
                EvalQuestion(
                    id=str(row["id"]),
                    text=row["question"],
                    answers=(answer,) if answer and kind != "unanswerable" else (),
                    relevant={source: 1 for source in row.get("sources", [])},
                    unanswerable=kind == "unanswerable",
                    kind=kind,
                )
            )
    return EvalSet(name=folder.name, questions=questions, has_qrels=True, files_root=corpus)


def sample_questions(questions: list[EvalQuestion], limit: int | None, seed: int) -> list[EvalQuestion]:
    """A stable sample: the questions in a seeded shuffle of id order, so a smaller limit is a prefix of a larger."""
    import random

    ordered = sorted(questions, key=lambda q: q.id)
    random.Random(seed).shuffle(ordered)
    return ordered if limit is None else ordered[:limit]


def prepare_data_dir(eval_set: EvalSet, settings: Settings, work_dir: Path) -> Settings:
    """Settings whose data directory holds this set's corpus, ingesting it only when no cached copy is complete."""
    data_dir = work_dir / f"{eval_set.name}-{eval_set.fingerprint(settings)}"
    ready = data_dir / "eval-ready.json"
    scoped = settings.model_copy(update={"data_dir": data_dir})
    if ready.exists():
        return scoped
    if eval_set.files_root is not None:
        report = ingest(scoped, IngestRequest(paths=[eval_set.files_root], source=eval_set.name))
    else:
        report = ingest_records(scoped, eval_set.records, source=eval_set.name)
    ready.write_text(json.dumps({"set": eval_set.name, "job": report.job_id, "counts": report.counts()}))
    return scoped


def document_ids(settings: Settings, eval_set: EvalSet) -> dict[str, int]:
    """Document key -> catalogue id for every indexed document of the set (for scoped questions)."""
    with open_catalogue(settings)() as session:
        rows = session.execute(select(Document.path, Document.id).where(Document.status == "indexed")).all()
    return {eval_set.document_key(path): doc_id for path, doc_id in rows}
