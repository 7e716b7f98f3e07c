"""Retrieval benchmark: BM25-only, dense-only and fused quality on the dev sets, the fusion sweep that chose the
shipped method and weight, the confidence's calibration, exact-vs-HNSW recall, and search latency.

    .venv/bin/python -m eval.bench_retrieval                 # quality, sweep, calibration, real-index latency
    .venv/bin/python -m eval.bench_retrieval --scale 100000 --scale 1000000   # plus synthetic-size latency

Every ranker is scored from one candidate set per query (the union of the dense and BM25 tops, both scores exact),
so the three columns differ only in how candidates are ordered; the fused column is then checked against what
`Searcher.search` itself returns.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.table import Table

from eval.metrics import answer_token_recall, latency_figures, mean, ndcg_at_k, recall_at_k, reciprocal_rank
from eval.retrieval_devsets import DevSet, dev_sets
from eval.retrieval_runs import QueryRun, collect_cached, confidence_rows, ranked_positions, reliability
from penny import Settings
from retrieval.confidence import FEATURES, ConfidenceModel
from retrieval.fusion import FusionMethod, fuse_scores, has_number, is_long
from retrieval.search import Searcher

console = Console(width=160)
RELEVANT_ANSWER_SHARE = 0.5  # answer-labelled sets: a passage holding half an answer's tokens counts as relevant


# ---------------------------------------------------------------- rankers and metrics

Scorer = Callable[[QueryRun], np.ndarray]
MEASURES = ("R@1", "R@5", "R@10", "MRR@10", "nDCG@10")


def bm25_only(run: QueryRun) -> np.ndarray:
    scores = np.full(len(run.candidates.rows), -np.inf)
    for position in run.candidates.bm25_rank:
        scores[position] = run.candidates.bm25[position]
    return scores


def dense_only(run: QueryRun) -> np.ndarray:
    return run.candidates.dense.astype(np.float64)


def fused(method: FusionMethod) -> Scorer:
    return lambda run: fuse_scores(run.candidates, method, run.query.text)


def per_query(devset: DevSet, runs: list[QueryRun], scorer: Scorer) -> dict[str, np.ndarray]:
    """Each measure for each query. Answer-labelled sets (no qrels): R@k is the answer-token recall of the top k
    passages together, and a passage counts as relevant for MRR and nDCG by its own answer-token recall."""
    values: dict[str, list[float]] = {name: [] for name in MEASURES}
    for run in runs:
        order = ranked_positions(run, scorer(run))
        if devset.labels == "qrels":
            ids, qrels = [run.ids[i] for i in order], devset.dataset.qrels[run.query.id]
            found = {
                "R@1": recall_at_k(ids, qrels, 1),
                "R@5": recall_at_k(ids, qrels, 5),
                "R@10": recall_at_k(ids, qrels, 10),
                "MRR@10": reciprocal_rank(ids, qrels, 10),
                "nDCG@10": ndcg_at_k(ids, qrels, 10),
            }
        else:
            answers = devset.dataset.answers.get(run.query.id, [])
            texts = [run.texts[i] for i in order]
            own = [answer_token_recall([t], answers) for t in texts]
            first = next((i for i, share in enumerate(own) if share >= RELEVANT_ANSWER_SHARE), None)
            found = {
                "R@1": answer_token_recall(texts[:1], answers),
                "R@5": answer_token_recall(texts[:5], answers),
                "R@10": answer_token_recall(texts[:10], answers),
                "MRR@10": 0.0 if first is None else 1.0 / (first + 1),
                "nDCG@10": ndcg_at_k([str(i) for i in range(len(own))], {str(i): g for i, g in enumerate(own)}, 10),
            }
        for name in MEASURES:
            values[name].append(found[name])
    return {name: np.array(v) for name, v in values.items()}


def evaluate(devset: DevSet, runs: list[QueryRun], scorer: Scorer) -> dict[str, float]:
    return {name: float(v.mean()) if len(v) else 0.0 for name, v in per_query(devset, runs, scorer).items()}


# ---------------------------------------------------------------- fusion sweep

WEIGHTS = [float(w) for w in np.round(np.arange(0.0, 1.0001, 0.05), 2)]
NORMALISATIONS = ("min-max", "z-score", "max")
RRF_KS = (1, 5, 10, 20, 40, 60, 100)


@dataclass
class SweepRow:
    method: FusionMethod
    scores: dict[str, dict[str, float]]  # set -> measure -> mean
    beats_both: bool
    objective: float


def _beats(fused_value: float, bm25_value: float, dense_value: float) -> bool:
    """Strictly better than both inputs, or equal at the ceiling (a Recall@10 of 1.0 cannot be beaten)."""
    best = max(bm25_value, dense_value)
    return fused_value > best or (best >= 1.0 - 1e-12 and fused_value >= best - 1e-12)


LONG_QUERY_TERMS = (6, 8)


@dataclass
class SweepArrays:
    """Per-query R@10 and MRR@10 of both inputs and of RRF and single-weight convex fusion on every set; methods
    with query-dependent weights are composed from these per query, so the grid stays cheap."""

    fixed: dict[FusionMethod, dict[str, dict[str, np.ndarray]]]
    numeric: dict[str, np.ndarray]  # set -> which queries hold a number
    long: dict[int, dict[str, np.ndarray]]  # term limit -> set -> which queries are long
    bm25: dict[str, dict[str, np.ndarray]]
    dense: dict[str, dict[str, np.ndarray]]

    def methods(self) -> list[FusionMethod]:
        found = list(self.fixed)
        for normalisation in NORMALISATIONS:
            for plain in WEIGHTS:
                for limit in (None, *LONG_QUERY_TERMS):
                    for long_weight in [None] if limit is None else WEIGHTS:
                        for numeric_weight in (None, *WEIGHTS):
                            if long_weight == plain or numeric_weight == plain:
                                continue
                            if limit is None and numeric_weight is None:
                                continue
                            found.append(
                                FusionMethod(
                                    "convex",
                                    plain,
                                    normalisation,
                                    numeric_dense_weight=numeric_weight,
                                    long_query_terms=limit,
                                    long_dense_weight=long_weight,
                                )
                            )
        return found

    def arrays(self, method: FusionMethod) -> dict[str, dict[str, np.ndarray]]:
        if method in self.fixed:
            return self.fixed[method]

        def single(weight: float) -> dict[str, dict[str, np.ndarray]]:
            return self.fixed[FusionMethod("convex", weight, method.normalisation)]

        combined = single(method.dense_weight)
        if method.long_dense_weight is not None:
            long_arrays, masks = single(method.long_dense_weight), self.long[method.long_query_terms]
            combined = _choose(masks, long_arrays, combined)
        if method.numeric_dense_weight is not None:
            combined = _choose(self.numeric, single(method.numeric_dense_weight), combined)
        return combined


def _choose(masks, when_true, otherwise) -> dict[str, dict[str, np.ndarray]]:
    return {
        name: {m: np.where(masks[name], when_true[name][m], v) for m, v in by_m.items()}
        for name, by_m in otherwise.items()
    }


def sweep_arrays(sets: list[tuple[DevSet, list[QueryRun]]]) -> SweepArrays:
    keep = ("R@10", "MRR@10")

    def measured(devset: DevSet, runs: list[QueryRun], scorer: Scorer) -> dict[str, np.ndarray]:
        return {m: v for m, v in per_query(devset, runs, scorer).items() if m in keep}

    fixed: dict[FusionMethod, dict[str, dict[str, np.ndarray]]] = {}
    for k in RRF_KS:
        method = FusionMethod("rrf", rrf_k=k)
        fixed[method] = {d.name: measured(d, runs, fused(method)) for d, runs in sets}
    for normalisation in NORMALISATIONS:
        for w in WEIGHTS:
            method = FusionMethod("convex", w, normalisation)
            fixed[method] = {d.name: measured(d, runs, fused(method)) for d, runs in sets}
    return SweepArrays(
        fixed=fixed,
        numeric={d.name: np.array([has_number(r.query.text) for r in runs], dtype=bool) for d, runs in sets},
        long={
            limit: {d.name: np.array([is_long(r.query.text, limit) for r in runs], dtype=bool) for d, runs in sets}
            for limit in LONG_QUERY_TERMS
        },
        bm25={d.name: measured(d, runs, bm25_only) for d, runs in sets},
        dense={d.name: measured(d, runs, dense_only) for d, runs in sets},
    )


def sweep_rows(
    arrays: SweepArrays, subset: Callable[[int], bool] = lambda i: True, methods: list[FusionMethod] | None = None
) -> list[SweepRow]:
    """Mean measures of every method over the queries whose position `subset` accepts."""
    masks = {
        name: np.array([subset(i) for i in range(len(by_m["R@10"]))], dtype=bool) for name, by_m in arrays.bm25.items()
    }

    def means(by_set: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
        return {name: {m: float(v[masks[name]].mean()) for m, v in by_m.items()} for name, by_m in by_set.items()}

    bm25, dense = means(arrays.bm25), means(arrays.dense)
    rows = []
    for method in methods if methods is not None else arrays.methods():
        scores = means(arrays.arrays(method))
        beats = all(_beats(scores[n][m], bm25[n][m], dense[n][m]) for n in scores for m in ("R@10", "MRR@10"))
        objective = mean((s["R@10"] + s["MRR@10"]) / 2 for s in scores.values())
        rows.append(SweepRow(method, scores, beats, objective))
    return rows


def input_means(arrays: SweepArrays, subset: Callable[[int], bool]) -> dict[str, dict[str, dict[str, float]]]:
    out = {}
    for ranker, by_set in (("bm25", arrays.bm25), ("dense", arrays.dense)):
        out[ranker] = {}
        for name, by_m in by_set.items():
            mask = np.array([subset(i) for i in range(len(by_m["R@10"]))], dtype=bool)
            out[ranker][name] = {m: float(v[mask].mean()) for m, v in by_m.items()}
    return out


def held_out_check(arrays: SweepArrays, set_names: list[str]) -> None:
    """Choose on half the queries, measure on the other half: does the choice carry over to unseen queries?"""
    halves = {"even": lambda i: i % 2 == 0, "odd": lambda i: i % 2 == 1}
    out = Table(
        "chosen on",
        "method",
        "measured on",
        *[f"{n} fused vs best input R@10 | MRR" for n in set_names],
        title="held-out check of the fusion choice",
    )
    for pick, test in (("even", "odd"), ("odd", "even")):
        chosen = best_of(sweep_rows(arrays, halves[pick])).method
        row = sweep_rows(arrays, halves[test], [chosen])[0]
        inputs = input_means(arrays, halves[test])
        cells = []
        for n in set_names:
            best_input = {m: max(inputs["bm25"][n][m], inputs["dense"][n][m]) for m in ("R@10", "MRR@10")}
            cells.append(
                f"{row.scores[n]['R@10']:.3f} vs {best_input['R@10']:.3f} | "
                f"{row.scores[n]['MRR@10']:.3f} vs {best_input['MRR@10']:.3f}"
            )
        out.add_row(pick, str(chosen), test, *cells)
    console.print(out)


def best_of(rows: list[SweepRow]) -> SweepRow:
    """The best mean of Recall@10 and MRR@10 among methods beating both inputs everywhere (else the best)."""
    eligible = [row for row in rows if row.beats_both] or rows
    return max(eligible, key=lambda row: row.objective)


def print_sweep(rows: list[SweepRow], set_names: list[str], top: int = 10) -> None:
    out = Table(
        "method", *[f"{n} R@10/MRR" for n in set_names], "mean", "beats both", title="fusion sweep (best first)"
    )
    picks = sorted(rows, key=lambda r: -r.objective)[:top]

    def family(method: FusionMethod) -> tuple:
        return method.kind, method.numeric_dense_weight is not None, method.long_dense_weight is not None

    for key in sorted({family(r.method) for r in rows}):
        members = [r for r in rows if family(r.method) == key]
        for pool in (members, [r for r in members if r.beats_both]):
            if pool and (best := max(pool, key=lambda r: r.objective)) not in picks:
                picks.append(best)
    for row in picks:
        cells = [f"{row.scores[n]['R@10']:.3f}/{row.scores[n]['MRR@10']:.3f}" for n in set_names]
        out.add_row(str(row.method), *cells, f"{row.objective:.4f}", "yes" if row.beats_both else "no")
    console.print(out)
    console.print(f"{sum(r.beats_both for r in rows)} of {len(rows)} methods beat both inputs on every set")


def print_quality(results: dict[str, dict[str, dict[str, float]]], method: FusionMethod) -> None:
    out = Table(
        "set", "ranker", "R@1", "R@5", "R@10", "MRR@10", "nDCG@10", title=f"retrieval quality (fused = {method})"
    )
    for name, by_ranker in results.items():
        for ranker, scores in by_ranker.items():
            out.add_row(name, ranker, *[f"{scores[m]:.4f}" for m in ("R@1", "R@5", "R@10", "MRR@10", "nDCG@10")])
    console.print(out)


# ---------------------------------------------------------------- confidence calibration


def print_calibration(sets: list[tuple[DevSet, list[QueryRun]]], method: FusionMethod) -> None:
    model = ConfidenceModel.packaged()

    out = Table(
        "set", "queries", "top-1 accuracy", "mean confidence", "ECE", title=f"confidence calibration ({model.note})"
    )
    everything_p, everything_y = [], []
    for devset, runs in sets:
        if devset.labels != "qrels":
            continue
        xs, ys = confidence_rows(devset, runs, method)
        ps = np.array([model.predict(dict(zip(FEATURES, row, strict=True))) for row in xs])
        ece, _ = reliability(ps, ys)
        out.add_row(devset.name, str(len(ys)), f"{ys.mean():.3f}", f"{ps.mean():.3f}", f"{ece:.3f}")
        everything_p.append(ps)
        everything_y.append(ys)
    ps, ys = np.concatenate(everything_p), np.concatenate(everything_y)
    ece, table = reliability(ps, ys)
    out.add_row("all", str(len(ys)), f"{ys.mean():.3f}", f"{ps.mean():.3f}", f"{ece:.3f}")
    console.print(out)
    bins = Table("confidence", "queries", "mean confidence", "top-1 relevant", title="reliability (all qrels sets)")
    for label, count, confidence, accuracy in table:
        bins.add_row(label, str(count), f"{confidence:.3f}", f"{accuracy:.3f}")
    console.print(bins)


# ---------------------------------------------------------------- checks against the real search path


def check_searcher_matches(devset: DevSet, runs: list[QueryRun], searcher: Searcher, sample: int = 50) -> float:
    """Share of sampled queries whose Searcher.search top 10 equals the benchmark's fused top 10."""
    method = FusionMethod.from_settings(searcher.settings)
    same = 0
    for run in runs[:sample]:
        expected = [run.ids[i] for i in ranked_positions(run, fuse_scores(run.candidates, method, run.query.text))]
        result = searcher.search(run.query.text, 10, run.search_filter)
        prefix = devset.dataset.record_path("")
        got = [p.chunk.source_path.removeprefix(prefix) for p in result.passages]
        same += got == expected
    return same / max(1, min(sample, len(runs)))


def latency(searcher: Searcher, queries: list[str], repeats: int = 1) -> dict[str, float]:
    searcher.search(queries[0], 10)  # warm: model loaded, snapshot open
    times = []
    started = time.perf_counter()
    for _ in range(repeats):
        for query in queries:
            t0 = time.perf_counter()
            searcher.search(query, 10)
            times.append((time.perf_counter() - t0) * 1000)
    return latency_figures(times, time.perf_counter() - started)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-queries", type=int, default=None, help="Sample this many queries per set.")
    parser.add_argument("--ocp-questions", type=int, default=200)
    parser.add_argument("--scale", type=int, action="append", default=[], help="Synthetic index size for latency.")
    parser.add_argument("--quality-only", action="store_true", help="Stop after the sweep and the quality table.")
    parser.add_argument("--json", dest="json_out", default="", help="Also write the figures to this JSON file.")
    args = parser.parse_args()

    sets = dev_sets(args.max_queries, args.ocp_questions)
    searchers: dict[str, Searcher] = {}
    collected = []
    for devset in sets:
        key = str(devset.settings.data_dir)
        searchers.setdefault(key, Searcher(devset.settings))
        t0 = time.perf_counter()
        runs = collect_cached(devset, searchers[key])
        chunks = len(searchers[key].snapshot())
        console.print(
            f"{devset.name}: {len(runs)} queries, {chunks} chunks, collected in {time.perf_counter() - t0:.1f}s"
        )
        collected.append((devset, runs))

    names = [d.name for d, _ in collected]
    arrays = sweep_arrays(collected)
    table = sweep_rows(arrays)
    best = best_of(table).method
    print_sweep(table, names)
    held_out_check(arrays, names)
    shipped = FusionMethod.from_settings(Settings())
    console.print(f"[bold]chosen by the sweep: {best}; shipped in Settings: {shipped}[/bold]")

    results = {}
    for devset, runs in collected:
        results[devset.name] = {
            "bm25": evaluate(devset, runs, bm25_only),
            "dense": evaluate(devset, runs, dense_only),
            "fused": evaluate(devset, runs, fused(shipped)),
        }
    print_quality(results, shipped)
    if args.quality_only:
        return
    print_calibration(collected, shipped)

    for devset, runs in collected:
        searcher = searchers[str(devset.settings.data_dir)]
        if FusionMethod.from_settings(searcher.settings) == shipped:
            console.print(
                f"{devset.name}: Searcher.search top 10 equals the benchmark's fused top 10 on "
                f"{check_searcher_matches(devset, runs, searcher):.0%} of 50 queries"
            )

    from eval.scale_runs import ann_recall_on_real, embedding_threads_side_by_side, print_latency, scale_latency

    figures = {"quality": results, "fusion": str(shipped)}
    rows = []
    for devset, _runs in collected:
        if devset.scoped:
            continue
        searcher = searchers[str(devset.settings.data_dir)]
        figures.setdefault("latency", {})[devset.name] = measured = latency(
            searcher, [q.text for q in devset.queries[:200]]
        )
        rows.append((f"{devset.name} (real, {len(searcher.snapshot())} chunks, full search)", measured))
    first = searchers[str(collected[0][0].settings.data_dir)]
    rows.extend(embedding_threads_side_by_side(first, [q.text for q in collected[0][0].queries[:100]]))
    figures["ann_recall_real"] = ann_recall_on_real(collected[1][0])
    for size in args.scale:
        rows.extend(scale_latency(size))
    print_latency(rows)
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(figures, handle, indent=2, default=str)


if __name__ == "__main__":
    main()
