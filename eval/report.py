"""Per-strategy figures from the per-question records, the router's threshold sweep, the cost-quality plot,
and the report files (report.json, report.md, cost_quality.png).

Definitions (also written into report.json):
- quality metrics (answer_f1, answer_recall, answer_similarity) average over answerable questions with a reference
  answer; accuracy and the "correct" count are over every graded question (answerable with a reference, or
  unanswerable);
- correct: eval.quality.CORRECT_RECALL;
- cost_per_answer_usd: the answers' summed `usd_local` over their number; cost_per_correct_answer_usd: the same sum
  over the number of correct answers (null when none is correct); `_api_equivalent` variants use the hosted-API
  price of the LLM tokens the answers used;
- no_llm_share: share of answers that used zero LLM tokens; llm_share: the rest, the share sent to an LLM (an
  LLM answer that declined and became an abstention still counts: the LLM ran);
- latency: wall-clock milliseconds of Answerer.answer, p50 and p95 by linear interpolation (numpy.percentile).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from answer.router import _COMBINES as COMBINES  # the router's "needs several facts" rule, replayed by the sweep
from eval.quality import CORRECT_RECALL
from eval.runner import Run, load_records

CORRECT_DEFINITION = (
    f"an answerable question answered (not abstained) with answer-token recall >= {CORRECT_RECALL} against a "
    "reference answer, or an unanswerable question abstained on"
)
PLOT = "cost_quality.png"
_SWEEP_GRID = [round(0.05 * step, 2) for step in range(21)]


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _tokens(record: dict[str, Any]) -> int:
    cost = record.get("cost") or {}
    return int(cost.get("llm_prompt_tokens", 0)) + int(cost.get("llm_completion_tokens", 0))


def _usd(record: dict[str, Any], kind: str) -> float:
    return float((record.get("cost") or {}).get(kind, 0.0))


def _per(total: float, count: int) -> float | None:
    return total / count if count else None


def summarise(answers: Sequence[dict[str, Any]], retrieval: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures of one strategy over its answer records (see the module docstring for the definitions)."""
    n = len(answers)
    graded = [r for r in answers if r["graded"]]
    answerable = [r for r in graded if not r["unanswerable"]]
    unanswerable = [r for r in graded if r["unanswerable"]]
    abstained = [r for r in graded if r["abstained"]]
    correct = sum(1 for r in graded if r["correct"])
    ranking = [retrieval[r["qid"]] for r in answers if r["qid"] in retrieval]
    latencies = [r["latency_ms"] for r in answers]
    local = sum(_usd(r, "usd_local") for r in answers)
    api = sum(_usd(r, "usd_api_equivalent") for r in answers)
    return {
        "n": n,
        "n_graded": len(graded),
        "n_unanswerable": len(unanswerable),
        "recall@10": _mean(x["recall@10"] for x in ranking if "recall@10" in x),
        "mrr@10": _mean(x["mrr@10"] for x in ranking if "mrr@10" in x),
        "ndcg@10": _mean(x["ndcg@10"] for x in ranking if "ndcg@10" in x),
        "context_answer_recall@10": _mean(
            x["context_answer_recall@10"] for x in ranking if "context_answer_recall@10" in x
        ),
        "answer_f1": _mean(r["answer_f1"] for r in answerable),
        "answer_recall": _mean(r["answer_recall"] for r in answerable),
        "answer_similarity": _mean(r["similarity"] for r in answerable),
        "n_correct": correct,
        "accuracy": _per(correct, len(graded)),
        "abstain_share": _per(sum(1 for r in answers if r["abstained"]), n),
        "abstention_precision": _per(sum(1 for r in abstained if r["unanswerable"]), len(abstained)),
        "abstention_recall": _per(sum(1 for r in unanswerable if r["abstained"]), len(unanswerable)),
        "no_llm_share": _per(sum(1 for r in answers if _tokens(r) == 0), n),
        "llm_share": _per(sum(1 for r in answers if _tokens(r) > 0), n),
        "paths": dict(Counter(r["path"] for r in answers)),
        "forms": dict(Counter(r["form"] for r in answers if r.get("form"))),  # the shapes of passage answers
        "llm_prompt_tokens": sum(int((r.get("cost") or {}).get("llm_prompt_tokens", 0)) for r in answers),
        "llm_completion_tokens": sum(int((r.get("cost") or {}).get("llm_completion_tokens", 0)) for r in answers),
        "llm_tokens_per_answer": _per(sum(_tokens(r) for r in answers), n),
        "p50_latency_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "p95_latency_ms": float(np.percentile(latencies, 95)) if latencies else None,
        "cost_per_answer_usd": _per(local, n),
        "cost_per_correct_answer_usd": _per(local, correct),
        "cost_per_answer_usd_api_equivalent": _per(api, n),
        "cost_per_correct_answer_usd_api_equivalent": _per(api, correct),
        "errors": sum(1 for r in answers if r["path"] == "error"),
    }


# ---------------------------------------------------------------- threshold sweep


@dataclass(frozen=True)
class SweepPoint:
    threshold: float
    llm_share: float
    accuracy: float
    answer_f1: float
    cost_per_answer_usd: float
    cost_per_answer_usd_api_equivalent: float


def replay_router(
    passages: Sequence[dict[str, Any]], llm: Sequence[dict[str, Any]], threshold: float, abstain_floor: float
) -> list[dict[str, Any]]:
    """The record the router would have produced for each question at this passage threshold, from the recorded
    passage and LLM outcomes: abstain below the floor (costing what the passage answer cost), the passage answer
    at or above the threshold unless the question combines facts, else the LLM answer."""
    routed = []
    for by_passage, by_llm in zip(passages, llm, strict=True):
        confidence = by_passage["confidence"] if by_passage["confidence"] is not None else 0.0
        if confidence < abstain_floor:
            correct = by_passage["unanswerable"]
            routed.append(by_passage | {"path": "abstain", "abstained": True, "correct": correct,
                                        "answer_f1": 0.0, "answer_recall": 0.0, "similarity": 0.0})  # fmt: skip
        elif confidence >= threshold and not COMBINES.search(by_passage["question"]):
            routed.append(by_passage)
        else:
            routed.append(by_llm)
    return routed


def sweep(records: dict[str, dict[str, dict[str, Any]]], abstain_floor: float) -> dict[str, Any] | None:
    """The router's cost-quality curve over passage thresholds, on the graded questions answered by both the
    passages and the llm strategies, and the cheapest threshold whose accuracy is at least always-LLM's."""
    if "passages" not in records or "llm" not in records:
        return None
    qids = sorted(q for q in records["llm"] if q in records["passages"] and records["llm"][q]["graded"])
    if not qids:
        return None
    passages = [records["passages"][q] for q in qids]
    llm = [records["llm"][q] for q in qids]
    confidences = {p["confidence"] for p in passages if p["confidence"] is not None}
    thresholds = sorted(set(_SWEEP_GRID) | confidences | {math.inf})
    points = [_point(t, replay_router(passages, llm, t, abstain_floor)) for t in thresholds]
    always_llm = _point(math.inf, llm)
    passages_only = _point(0.0, passages)
    good_enough = [p for p in points if p.accuracy >= always_llm.accuracy - 1e-12]
    best = min(good_enough, key=lambda p: (p.cost_per_answer_usd, -p.accuracy, -p.threshold), default=None)
    result: dict[str, Any] = {
        "n": len(qids),
        "quality": "accuracy (share correct)",
        "abstain_floor": abstain_floor,
        "always_llm": _as_dict(always_llm),
        "passages_only": _as_dict(passages_only),
        "operating_point": _as_dict(best) if best else None,
        "most_accurate_point": _as_dict(max(points, key=lambda p: (p.accuracy, -p.cost_per_answer_usd))),
        "points": [_as_dict(p) for p in points],
    }
    if "routed" in records:
        measured = [records["routed"][q] for q in qids if q in records["routed"]]
        if len(measured) == len(qids):
            result["routed_measured"] = _as_dict(_point(math.nan, measured))
    return result


def _point(threshold: float, routed: Sequence[dict[str, Any]]) -> SweepPoint:
    n = len(routed)
    answerable = [r for r in routed if not r["unanswerable"]]
    return SweepPoint(
        threshold=threshold,
        llm_share=sum(1 for r in routed if _tokens(r) > 0) / n,
        accuracy=sum(1 for r in routed if r["correct"]) / n,
        answer_f1=_mean(r["answer_f1"] for r in answerable) or 0.0,
        cost_per_answer_usd=sum(_usd(r, "usd_local") for r in routed) / n,
        cost_per_answer_usd_api_equivalent=sum(_usd(r, "usd_api_equivalent") for r in routed) / n,
    )


def _as_dict(point: SweepPoint) -> dict[str, Any]:
    values = point.__dict__.copy()
    if not math.isfinite(values["threshold"]):
        values["threshold"] = None  # inf: no answer from passages; nan: the measured router
    return values


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    """Accuracy against cost per 1,000 answers (local CPU and API-equivalent), the sweep as a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=80)
    for axis, field, label in (
        (axes[0], "cost_per_answer_usd", "local CPU cost, USD per 1,000 answers"),
        (axes[1], "cost_per_answer_usd_api_equivalent", "API-equivalent cost, USD per 1,000 answers"),
    ):
        curve = sorted(result["points"], key=lambda p: p[field])
        axis.plot([p[field] * 1000 for p in curve], [p["accuracy"] for p in curve], "-", color="0.6",
                  marker=".", label="router, threshold sweep")  # fmt: skip
        marks = [("passages_only", "s", "passages only"), ("always_llm", "^", "always LLM"),
                 ("routed_measured", "o", "routed (measured)"),
                 ("operating_point", "*", "operating point")]  # fmt: skip
        for key, marker, name in marks:
            point = result.get(key)
            if point:
                axis.plot(point[field] * 1000, point["accuracy"], marker, markersize=11 if marker == "*" else 8,
                          label=name)  # fmt: skip
        axis.set_xlabel(label)
        axis.set_ylabel("accuracy")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    figure.suptitle(f"{title}: cost against quality (n={result['n']})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# ---------------------------------------------------------------- the report


def build_report(run: Run) -> dict[str, Any]:
    """report.json's content from the records in OUT/results.jsonl (only those of the current sample)."""
    sampled = {q.id for q in run.questions}
    records = [r for r in load_records(run.results_path) if r["qid"] in sampled]
    retrieval = {r["qid"]: r for r in records if r["kind"] == "retrieval"}
    by_strategy: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        if record["kind"] == "answer" and record["strategy"] in run.config.strategies:
            by_strategy.setdefault(record["strategy"], {})[record["qid"]] = record
    common = set(sampled)
    for answered in by_strategy.values():
        common &= set(answered)
    settings = run.settings
    return {
        "dataset": run.eval_set.name,
        "questions_sampled": len(run.questions),
        "seed": run.config.seed,
        "limit": run.config.limit,
        "llm_limit": run.config.llm_limit,
        "has_qrels": run.eval_set.has_qrels,
        "settings": {
            "llm_model": settings.llm_model,
            "passage_threshold": settings.passage_threshold,
            "abstain_floor": settings.abstain_floor,
            "usd_per_cpu_core_hour": settings.usd_per_cpu_core_hour,
            "api_usd_per_1m_prompt": settings.api_usd_per_1m_prompt,
            "api_usd_per_1m_completion": settings.api_usd_per_1m_completion,
        },  # fmt: skip
        "correct_definition": CORRECT_DEFINITION,
        "strategies": {name: summarise(list(answered.values()), retrieval) for name, answered in by_strategy.items()},
        "paired": {
            "n": len(common),
            "strategies": {
                name: summarise([answered[q] for q in sorted(common)], retrieval)
                for name, answered in by_strategy.items()
            },
        },
        "sweep": sweep(by_strategy, settings.abstain_floor),
        "targets": targets(
            {name: summarise([a[q] for q in sorted(common)], retrieval) for name, a in by_strategy.items()}
        ),
    }


def targets(paired: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Issue 6's targets on the questions both answered: routed accuracy >= always-LLM's, <= 30 % of questions
    sent to the LLM, and <= 1/5 of always-LLM's cost per answer (local and API-equivalent)."""
    routed, llm = paired.get("routed"), paired.get("llm")
    if not routed or not llm or not routed["n"]:
        return None

    def ratio(key: str) -> float | None:
        return routed[key] / llm[key] if llm[key] else None

    checks = {
        "accuracy_at_least_llm": routed["accuracy"] >= llm["accuracy"],
        "llm_share_at_most_30pct": routed["llm_share"] <= 0.30,
        "local_cost_at_most_one_fifth": (ratio("cost_per_answer_usd") or 0.0) <= 0.2,
        "api_cost_at_most_one_fifth": (ratio("cost_per_answer_usd_api_equivalent") or 0.0) <= 0.2,
    }
    return checks | {
        "n": routed["n"],
        "accuracy": {"routed": routed["accuracy"], "llm": llm["accuracy"]},
        "llm_share": routed["llm_share"],
        "local_cost_ratio": ratio("cost_per_answer_usd"),
        "api_cost_ratio": ratio("cost_per_answer_usd_api_equivalent"),
    }


def write_report(run: Run, report: dict[str, Any]) -> list[Path]:
    out = run.config.out
    written = [out / "report.json", out / "report.md"]
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if report["sweep"]:
        plot(report["sweep"], out / PLOT, report["dataset"])
        written.append(out / PLOT)
    (out / "report.md").write_text(markdown(report))
    return written


_COLUMNS = [
    ("n", "n", "{:d}"), ("recall@10", "R@10", "{:.3f}"), ("mrr@10", "MRR@10", "{:.3f}"),
    ("ndcg@10", "nDCG@10", "{:.3f}"), ("context_answer_recall@10", "ctx ans. recall@10", "{:.3f}"),
    ("answer_f1", "F1", "{:.3f}"), ("answer_recall", "ans. recall", "{:.3f}"),
    ("answer_similarity", "emb. sim.", "{:.3f}"), ("accuracy", "accuracy", "{:.3f}"),
    ("abstention_precision", "abst. P", "{:.2f}"), ("abstention_recall", "abst. R", "{:.2f}"),
    ("no_llm_share", "no-LLM", "{:.0%}"), ("llm_tokens_per_answer", "LLM tok/ans", "{:.0f}"),
    ("p50_latency_ms", "p50 ms", "{:.0f}"), ("p95_latency_ms", "p95 ms", "{:.0f}"),
    ("cost_per_answer_usd", "$/answer local", "{:.2e}"), ("cost_per_correct_answer_usd", "$/correct local", "{:.2e}"),
    ("cost_per_answer_usd_api_equivalent", "$/answer API-eq.", "{:.2e}"),
    ("cost_per_correct_answer_usd_api_equivalent", "$/correct API-eq.", "{:.2e}"),
]  # fmt: skip


def table(strategies: dict[str, dict[str, Any]]) -> str:
    """A Markdown table, one row per strategy; `-` where a figure does not apply."""
    lines = ["| strategy | " + " | ".join(label for _, label, _ in _COLUMNS) + " |",
             "|---|" + "---:|" * len(_COLUMNS)]  # fmt: skip
    for name, figures in strategies.items():
        cells = ["-" if figures[key] is None else fmt.format(figures[key]) for key, _, fmt in _COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    parts = [
        f"# Penny evaluation: {report['dataset']}",
        "",
        f"{report['questions_sampled']} questions sampled (seed {report['seed']}); answered: "
        + ", ".join(f"{name} {figures['n']}" for name, figures in report["strategies"].items())
        + " (each strategy's questions are the first of the same seeded sample). Model "
        f"`{report['settings']['llm_model']}`, passage threshold {report['settings']['passage_threshold']}, "
        f"abstain floor {report['settings']['abstain_floor']}.",
        "",
        f"Correct: {report['correct_definition']}. Cost: local = measured CPU seconds at "
        f"${report['settings']['usd_per_cpu_core_hour']}/core-hour; API-equivalent = the LLM tokens used at "
        f"${report['settings']['api_usd_per_1m_prompt']}/${report['settings']['api_usd_per_1m_completion']} per 1M "
        "prompt/completion tokens.",
        "",
        "## Every question each strategy answered",
        "",
        table(report["strategies"]),
        "",
        f"## The {report['paired']['n']} questions every strategy answered (like for like)",
        "",
        table(report["paired"]["strategies"]),
    ]
    if report.get("targets"):
        parts += ["", "## Targets (routed against always-LLM, like for like)", "", *_target_lines(report["targets"])]
    sweep_result = report["sweep"]
    if sweep_result:
        parts += ["", "## Router threshold sweep", "", *_sweep_lines(sweep_result), "", f"![cost-quality]({PLOT})"]
    return "\n".join(parts) + "\n"


def _sweep_lines(result: dict[str, Any]) -> list[str]:
    def describe(point: dict[str, Any]) -> str:
        return (f"accuracy {point['accuracy']:.3f}, F1 {point['answer_f1']:.3f}, {point['llm_share']:.0%} to the "
                f"LLM, ${point['cost_per_answer_usd'] * 1000:.4f} local / "
                f"${point['cost_per_answer_usd_api_equivalent'] * 1000:.4f} API-eq. per 1,000 answers")  # fmt: skip

    lines = [f"Replayed from the recorded passage and LLM answers of {result['n']} questions "
             f"(abstain floor {result['abstain_floor']}); quality = {result['quality']}.", "",
             f"- always LLM: {describe(result['always_llm'])}",
             f"- passages only: {describe(result['passages_only'])}"]  # fmt: skip
    if result.get("routed_measured"):
        lines.append(f"- routed as measured: {describe(result['routed_measured'])}")
    best = result["operating_point"]
    if best:
        where = "no passage answers" if best["threshold"] is None else f"threshold {best['threshold']:.3f}"
        lines.append(f"- **operating point** (cheapest with accuracy >= always LLM): {where}: {describe(best)}")
    top = result.get("most_accurate_point")
    if top:
        where = "no passage answers" if top["threshold"] is None else f"threshold {top['threshold']:.3f}"
        lines.append(f"- most accurate threshold (cheapest among equals): {where}: {describe(top)}")
    lines += [
        "",
        "| threshold | to LLM | accuracy | F1 | $/1k answers local | $/1k API-eq. |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for point in result["points"]:
        if point["threshold"] is None or point["threshold"] in _SWEEP_GRID[::2]:
            shown = "∞" if point["threshold"] is None else f"{point['threshold']:.2f}"
            lines.append(f"| {shown} | {point['llm_share']:.0%} | {point['accuracy']:.3f} | {point['answer_f1']:.3f} "
                         f"| {point['cost_per_answer_usd'] * 1000:.4f} "
                         f"| {point['cost_per_answer_usd_api_equivalent'] * 1000:.4f} |")  # fmt: skip
    return lines


def _target_lines(result: dict[str, Any]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    local, api = result["local_cost_ratio"], result["api_cost_ratio"]
    return [
        f"- accuracy >= always-LLM: routed {result['accuracy']['routed']:.3f} vs {result['accuracy']['llm']:.3f}: "
        f"{verdict(result['accuracy_at_least_llm'])}",
        f"- <= 30 % of questions to the LLM: {result['llm_share']:.0%}: {verdict(result['llm_share_at_most_30pct'])}",
        f"- <= 1/5 of always-LLM's cost per answer: local {'-' if local is None else f'{local:.2f}'}x "
        f"({verdict(result['local_cost_at_most_one_fifth'])}), API-equivalent "
        f"{'-' if api is None else f'{api:.2f}'}x ({verdict(result['api_cost_at_most_one_fifth'])})",
    ]
