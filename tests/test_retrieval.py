"""Hybrid retrieval on small real indexes: real embedder, real SQLite catalogue, real FAISS and BM25."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.pipeline import IngestRequest, ingest
from ingest.records import Record, ingest_records
from penny import BadInput, IndexUnavailable, Settings
from retrieval.confidence import FEATURES, ConfidenceModel
from retrieval.fusion import FusionMethod, convex, min_max, reciprocal_rank, z_score
from retrieval.search import Searcher, SearchFilter

REPO = Path(__file__).resolve().parents[1]

HANDBOOK = {
    "hr/annual-leave.md": (
        ["hr"],
        "# Annual leave\n\nEvery employee receives 25 days of paid annual leave per calendar year. Unused days "
        "may be carried over until the end of March.\n\n## Booking\n\nBook holidays in the HR portal at least "
        "two weeks ahead and ask your manager to approve them.",
    ),
    "hr/salary-bands.txt": (
        ["hr", "finance"],
        "Salary bands are reviewed every April. A band change needs approval from the compensation committee "
        "and the finance director.",
    ),
    "engineering/on-call.md": (
        ["engineering"],
        "# On-call rota\n\nEngineers join the on-call rota after probation. A pager alert must be acknowledged "
        "within 15 minutes. The incident commander writes the postmortem.",
    ),
    "engineering/deploy.txt": (
        ["engineering"],
        "Production deploys use the release train. Hotfix builds carry the code ZX-4411 and skip the staging soak.",
    ),
    "public/office.md": (
        ["everyone"],
        "# Office\n\nThe Lisbon office opens at 8am. Bicycles can be parked in the basement garage; showers are "
        "on the second floor.",
    ),
    "public/expenses.txt": (
        ["everyone"],
        "Travel expenses are reimbursed within 30 days when receipts are uploaded to the expenses tool. Taxi "
        "fares after 10pm are always covered.",
    ),
}


def _write_handbook(root: Path) -> None:
    for relative, (_, text) in HANDBOOK.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture(scope="module")
def handbook(tmp_path_factory) -> tuple[Settings, Path]:
    """The handbook ingested folder by folder, each with its groups and its own source name."""
    root = tmp_path_factory.mktemp("handbook")
    _write_handbook(root / "files")
    config = Settings(data_dir=root / "data")
    for relative, (groups, _) in HANDBOOK.items():
        folder = relative.split("/")[0]
        ingest(config, IngestRequest(paths=[root / "files" / relative], groups=groups, source=folder))
    return config, root / "files"


@pytest.fixture(scope="module")
def searcher(handbook) -> Searcher:
    return Searcher(handbook[0])


def _paths(result) -> list[str]:
    return [p.chunk.source_path for p in result.passages]


def _name(result, rank: int = 0) -> str:
    return "/".join(Path(result.passages[rank].chunk.source_path).parts[-2:])


# ---------------------------------------------------------------- fusion


def test_min_max_and_z_score_normalise_the_candidates_own_scores():
    assert min_max(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert min_max(np.array([3.0, 3.0])).tolist() == [1.0, 1.0]
    assert z_score(np.array([1.0, 3.0])).tolist() == [-1.0, 1.0]


def test_convex_weight_moves_the_ranking_between_the_two_rankers():
    dense, bm25 = np.array([0.9, 0.5, 0.1]), np.array([0.0, 2.0, 8.0])
    assert np.argmax(convex(dense, bm25, 1.0)) == 0
    assert np.argmax(convex(dense, bm25, 0.0)) == 2
    # 0.5 * [1, .5, 0] + 0.5 * [0, .25, 1]
    assert convex(dense, bm25, 0.5).tolist() == pytest.approx([0.5, 0.375, 0.5])


def test_reciprocal_rank_fusion_matches_hand_computed_sums():
    fused = reciprocal_rank(3, dense_rank={0: 0, 1: 1}, bm25_rank={1: 0, 2: 1}, k=60)
    assert fused.tolist() == pytest.approx([1 / 61, 1 / 62 + 1 / 61, 1 / 62])


def test_hybrid_finds_an_exact_code_and_a_paraphrase(searcher):
    # a rare identifier only BM25 can match exactly
    assert _name(searcher.search("ZX-4411", k=3)) == "engineering/deploy.txt"
    # a paraphrase that shares no content word with its passage: dense carries it
    result = searcher.search("how many vacation days do staff get each year", k=3)
    assert _name(result) == "hr/annual-leave.md"
    top = result.passages[0]
    assert top.dense_score is not None and top.bm25_score is not None and top.rank == 1
    assert [p.rank for p in result.passages] == list(range(1, len(result.passages) + 1))
    assert all(a.score >= b.score for a, b in zip(result.passages, result.passages[1:], strict=False))


def test_every_fusion_method_ranks_the_obvious_passage_first(handbook):
    config, _ = handbook
    for method in (FusionMethod("rrf", rrf_k=60), FusionMethod("convex", 0.5, "z-score"), FusionMethod("convex", 0.7)):
        variant = config.model_copy(
            update={
                "fusion": method.kind,
                "fusion_dense_weight": method.dense_weight,
                "fusion_normalisation": method.normalisation,
            }
        )
        result = Searcher(variant).search("who writes the incident postmortem after a pager alert", k=2)
        assert _name(result) == "engineering/on-call.md", method


def test_search_many_equals_one_search_at_a_time(searcher):
    queries = ["bicycle parking", "salary band review", "taxi fares at night"]
    together = searcher.search_many(queries, k=3)
    for query, batch_result in zip(queries, together, strict=True):
        single = searcher.search(query, k=3)
        assert _paths(single) == _paths(batch_result)
        assert single.confidence == pytest.approx(batch_result.confidence, abs=1e-6)


def test_bad_queries_are_refused(searcher):
    with pytest.raises(BadInput):
        searcher.search("   ")
    with pytest.raises(BadInput):
        searcher.search("leave", k=0)
    with pytest.raises(BadInput):
        searcher.search_many(["a", "b"], 3, [None])


def test_searching_before_any_ingest_says_what_to_do(tmp_path):
    with pytest.raises(IndexUnavailable, match="penny ingest"):
        Searcher(Settings(data_dir=tmp_path)).search("anything")


# ---------------------------------------------------------------- filters


def test_group_filter_returns_only_readable_documents(searcher):
    result = searcher.search("annual leave days", k=10, search_filter=SearchFilter(groups=("engineering",)))
    assert result.passages
    assert {_name(result, i).split("/")[0] for i in range(len(result.passages))} == {"engineering"}
    finance = searcher.search("annual leave days", k=10, search_filter=SearchFilter(groups=("finance",)))
    assert _paths(finance) and all(p.endswith("hr/salary-bands.txt") for p in _paths(finance))
    nobody = searcher.search("annual leave days", k=10, search_filter=SearchFilter(groups=("visitors",)))
    assert nobody.passages == []


def test_source_filter(searcher):
    result = searcher.search("annual leave days", k=10, search_filter=SearchFilter(sources=("public",)))
    assert result.passages and all("/public/" in p for p in _paths(result))


def test_path_prefix_filter(searcher, handbook):
    prefix = str((handbook[1] / "engineering").resolve())
    result = searcher.search("booking holidays", k=10, search_filter=SearchFilter(path_prefix=prefix))
    assert result.passages and all(p.startswith(prefix) for p in _paths(result))


def test_doc_type_filter(searcher):
    result = searcher.search("annual leave days", k=10, search_filter=SearchFilter(doc_types=("txt",)))
    assert result.passages and all(p.endswith(".txt") for p in _paths(result))
    assert not any(p.endswith("annual-leave.md") for p in _paths(result))


def test_document_filter_scopes_the_search_to_one_document(searcher):
    snapshot = searcher.snapshot()
    office = next(d.id for d in snapshot.documents.values() if d.path.endswith("public/office.md"))
    result = searcher.search("annual leave days", k=10, search_filter=SearchFilter(document_ids=(office,)))
    assert result.passages and all(p.endswith("public/office.md") for p in _paths(result))


def test_filters_combine(searcher):
    both = SearchFilter(groups=("hr",), doc_types=("md",))
    result = searcher.search("salary band approval", k=10, search_filter=both)
    assert _paths(result) and all(p.endswith("hr/annual-leave.md") for p in _paths(result))


# ---------------------------------------------------------------- ACL properties

GROUPS = ("a", "b", "c", "d")
TOPICS = ("parking", "laptops", "payroll", "holidays", "security badges", "printers", "travel", "training")


def _acl_records() -> dict[tuple[str, ...], list[Record]]:
    """40 distinct passages under 8 group combinations, 5 each."""
    combos = [("a",), ("b",), ("c",), ("a", "b"), ("b", "c"), ("a", "c", "d"), ("d",), ("everyone",)]
    records: dict[tuple[str, ...], list[Record]] = {}
    for c, combo in enumerate(combos):
        records[combo] = [
            Record(
                id=f"{c}-{i}",
                title=f"{TOPICS[(c + i) % len(TOPICS)].title()} note {c}-{i}",
                text=f"Rule {c * 5 + i} about {TOPICS[(c + i) % len(TOPICS)]}: staff in unit {c} must follow "
                f"procedure {i} and file form {100 + c * 5 + i} with the office.",
            )
            for i in range(5)
        ]
    return records


def _acl_searcher(root: Path, ann_min_chunks: int) -> tuple[Searcher, dict[int, tuple[str, ...]]]:
    config = Settings(data_dir=root, ann_min_chunks=ann_min_chunks, candidates=8)
    for combo, records in _acl_records().items():
        ingest_records(config, records, source="acl-" + "-".join(combo), groups=list(combo))
    searcher = Searcher(config)
    groups_of = {doc.id: doc.groups for doc in searcher.snapshot().documents.values()}
    return searcher, groups_of


@pytest.fixture(scope="module")
def acl_indexes(tmp_path_factory) -> dict[str, tuple[Searcher, dict[int, tuple[str, ...]]]]:
    exact = _acl_searcher(tmp_path_factory.mktemp("acl-exact"), ann_min_chunks=10_000)
    hnsw = _acl_searcher(tmp_path_factory.mktemp("acl-hnsw"), ann_min_chunks=1)
    return {"exact": exact, "hnsw": hnsw}


def test_the_acl_indexes_are_one_exact_and_one_approximate(acl_indexes):
    assert not acl_indexes["exact"][0].snapshot().approximate
    assert acl_indexes["hnsw"][0].snapshot().approximate


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    caller=st.sets(st.sampled_from(GROUPS + ("everyone", "z")), max_size=3),
    k=st.integers(min_value=1, max_value=30),
    query=st.one_of(
        st.sampled_from([f"{t} procedure form" for t in TOPICS] + ["unit 3", "form 117", "office rules"]),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz 0123456789", min_size=1, max_size=30).filter(str.strip),
    ),
    kind=st.sampled_from(["exact", "hnsw", "hnsw-selector"]),
)
def test_no_disallowed_passage_ever_appears_and_results_fill_k(acl_indexes, caller, k, query, kind):
    searcher, groups_of = acl_indexes["exact" if kind == "exact" else "hnsw"]
    # "hnsw-selector": the graph walk with a FAISS ID selector instead of the exact path for narrow filters
    searcher.exact_filter_rows = 0 if kind == "hnsw-selector" else Searcher.exact_filter_rows
    result = searcher.search(query, k=k, search_filter=SearchFilter(groups=tuple(caller)))
    allowed_docs = {doc_id for doc_id, groups in groups_of.items() if set(groups) & caller}
    for passage in result.passages:
        assert set(groups_of[passage.chunk.document_id]) & caller, (caller, passage.chunk.source_path)
    # every record is one chunk with its own text: exactly min(k, allowed) passages must come back
    assert len(result.passages) == min(k, len(allowed_docs))
    assert len({p.chunk.id for p in result.passages}) == len(result.passages)


# ---------------------------------------------------------------- exact -> ANN switch


def test_index_switches_from_exact_to_hnsw_at_the_configured_size(tmp_path, handbook):
    _, files = handbook
    small = Settings(data_dir=tmp_path / "small", ann_min_chunks=10_000)
    large = Settings(data_dir=tmp_path / "large", ann_min_chunks=3)
    for config in (small, large):
        ingest(config, IngestRequest(paths=[files]))
    exact, approximate = Searcher(small), Searcher(large)
    assert not exact.snapshot().approximate
    assert approximate.snapshot().approximate
    manifest = json.loads((approximate.snapshot().folder / "manifest.json").read_text())
    assert manifest["approximate"] is True
    for query in ("ZX-4411 hotfix", "paid annual leave", "bicycle garage", "compensation committee"):
        assert _paths(exact.search(query, k=3))[0] == _paths(approximate.search(query, k=3))[0]


# ---------------------------------------------------------------- confidence


def test_packaged_confidence_is_fitted_and_monotone_in_every_feature():
    model = ConfidenceModel.packaged()
    assert set(model.weights) == set(FEATURES)
    assert all(weight >= 0 for weight in model.weights.values())
    base = dict.fromkeys(FEATURES, 0.3)
    for name in FEATURES:
        if model.weights[name] > 0:
            assert model.predict({**base, name: 0.9}) > model.predict(base), name


def test_confidence_is_higher_for_a_clear_match_than_for_noise(searcher):
    clear = searcher.search("Every employee receives 25 days of paid annual leave per calendar year", k=5)
    vague = searcher.search("colour of the ceiling in the boardroom", k=5)
    noise = searcher.search("zebra quantum marmalade", k=5)
    assert _name(clear) == "hr/annual-leave.md"
    assert clear.confidence > vague.confidence
    assert clear.confidence > noise.confidence
    assert clear.confidence > 0.5 > noise.confidence
    assert all(0.0 <= r.confidence <= 1.0 for r in (clear, vague, noise))


# ---------------------------------------------------------------- CLI


@pytest.mark.slow
def test_penny_search_cli_prints_ranked_passages_as_json_and_text(handbook):
    config, _ = handbook
    env = {**os.environ, "PENNY_DATA_DIR": str(config.data_dir)}
    penny = Path(sys.executable).with_name("penny")  # the installed entry point, as a user runs it
    command = [str(penny), "search", "annual leave days", "--k", "2", "--group", "hr"]
    done = subprocess.run([*command, "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["passages"]) == 2
    assert result["passages"][0]["chunk"]["source_path"].endswith("hr/annual-leave.md")
    assert {"score", "dense_score", "bm25_score", "rank"} <= set(result["passages"][0])
    assert all(p["chunk"]["source_path"].split("/")[-2] == "hr" for p in result["passages"])
    text = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert text.returncode == 0, text.stderr
    assert "1. Annual leave" in text.stdout and "annual-leave.md" in text.stdout and "confidence" in text.stdout
