"""Dev sets ingested once into cached data dirs under /tmp (never the repo), for the retrieval benchmark and the
confidence fit. Re-running is quick: ingestion skips records whose content is unchanged."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from eval.datasets import Dataset, Query, load_beir, shared_data_dir
from ingest.pipeline import IngestRequest, ingest
from ingest.records import ingest_records
from penny import Settings
from retrieval.catalogue import Document, open_catalogue
from retrieval.search import SearchFilter

CACHE = Path(os.environ.get("PENNY_BENCH_CACHE", "/tmp/penny-bench"))

# A bounded slice of ocp-4.15 (the full ingest is benchmarked by the ingestion work): these guides' folders and
# the questions written from them. Question doc_title -> docs/ folder.
OCP_GUIDES = {
    "Architecture": "architecture",
    "Registry": "registry",
    "Hosted Control Planes": "hosted_control_planes",
    "Cli Tools": "cli_reference",
    "Getting Started": "getting_started",
    "Web Console": "web_console",
}


@dataclass
class DevSet:
    """One evaluation run's inputs: a data dir holding the ingested corpus, and its queries with their labels."""

    name: str
    dataset: Dataset
    settings: Settings
    queries: list[Query]
    scoped: bool = False
    labels: str = "qrels"  # "qrels" or "answers" (answer-token recall proxy)

    def filter_for(self, query: Query, path_to_doc: dict[str, int]) -> SearchFilter | None:
        if not self.scoped:
            return None
        members = self.dataset.scope_of(query.id) or ()
        ids = tuple(
            path_to_doc[self.dataset.record_path(m)] for m in members if self.dataset.record_path(m) in path_to_doc
        )
        return SearchFilter(document_ids=ids)


def settings_for(name: str, **overrides) -> Settings:
    return Settings(data_dir=CACHE / name, **overrides)


def ingest_beir(dataset: Dataset, **overrides) -> Settings:
    settings = settings_for(dataset.name, **overrides)
    ingest_records(settings, dataset.corpus, source=dataset.name)
    return settings


def ingest_ocp_slice(dataset: Dataset, **overrides) -> Settings:
    settings = settings_for("ocp-4.15-slice", **overrides)
    folders = [dataset.docs_dir / folder for folder in OCP_GUIDES.values()]
    ingest(settings, IngestRequest(paths=folders, source=dataset.name))
    return settings


def document_ids_by_path(settings: Settings) -> dict[str, int]:
    with open_catalogue(settings)() as session:
        return {path: doc_id for doc_id, path in session.query(Document.id, Document.path)}


def dev_sets(max_queries: int | None = None, ocp_questions: int = 200, seed: int = 13) -> list[DevSet]:
    """msmarco-sample, tatqa-dev unscoped and scoped, and the ocp-4.15 slice; queries sampled when bounded."""
    root = shared_data_dir()
    rng = random.Random(seed)

    def sample(queries: list[Query], limit: int | None) -> list[Query]:
        return queries if limit is None or len(queries) <= limit else rng.sample(queries, limit)

    sets = []
    msmarco = load_beir(root / "msmarco-sample")
    sets.append(
        DevSet("msmarco-sample", msmarco, ingest_beir(msmarco), sample(msmarco.labelled_queries(), max_queries))
    )
    tatqa = load_beir(root / "tatqa-dev")
    tatqa_settings = ingest_beir(tatqa)
    tatqa_queries = sample(tatqa.labelled_queries(), max_queries)
    sets.append(DevSet("tatqa-dev", tatqa, tatqa_settings, tatqa_queries))
    sets.append(DevSet("tatqa-dev scoped", tatqa, tatqa_settings, tatqa_queries, scoped=True))
    ocp = load_beir(root / "ocp-4.15")
    ocp_queries = [q for q in ocp.queries.values() if q.metadata.get("doc_title") in OCP_GUIDES]
    sets.append(
        DevSet("ocp-4.15 slice", ocp, ingest_ocp_slice(ocp), sample(ocp_queries, ocp_questions), labels="answers")
    )
    return sets


if __name__ == "__main__":
    for devset in dev_sets():
        print(devset.name, devset.settings.data_dir, len(devset.queries), "queries")
