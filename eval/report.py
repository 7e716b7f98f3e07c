"""Per-strategy figures from the per-question records, the router's threshold sweep, the cost-quality plot,
and the report files (report.json, report.md, cost_quality.png).

Definitions (also written into report.json):
- quality metrics (answer_f1, f1_beyond_question, answer_recall, answer_similarity) average over answerable
  questions with a reference answer; accuracy and the "correct" count are over every graded question (answerable
  with a reference, or unanswerable);
- correct: eval.quality.CORRECT_RECALL;
- cost_per_answer_usd: the answers' summed `usd_local` over their number; cost_per_correct_answer_usd: the same sum
  over the number of correct answers (null when none is correct); `_api_equivalent` variants use the hosted-API
  price of the LLM tokens the answers used;
- no_llm_share: share of answers that used zero LLM tokens; llm_share: the rest, the share sent to an LLM (an
  LLM answer that declined and became an abstention still counts: the LLM ran);
- latency: wall-clock milliseconds of Answerer.answer, p50 and p95 by eval.metrics.percentile;
- means: eval.metrics.mean; token F1: eval.quality.token_f1 (the only F1 in eval), over all tokens (answer_f1)
  and over the tokens the question does not hold (f1_beyond_question, unknown for records made before it existed);
- routed (replayed): when the run has passage and LLM answers but no routed ones, the routed answer of each question
  is the one answer.policy.route picks from the recorded ones at the configured PENNY_ROUTER_MIN_GAIN;
- a target whose figure is unknown (no answers, no correct answer) is reported "unknown", never met.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from answer.correctness import CorrectnessModel
from answer.policy import Policy, route, route_inputs  # the router's own policy, replayed by the sweep
from eval.metrics import mean, percentile
from eval.quality import CORRECT_RECALL
from eval.runner import Run, load_records
from penny import FLAGS, flag_name

CORRECT_DEFINITION = (
    f"an answerable question answered (not abstained) with answer-token recall >= {CORRECT_RECALL} against a "
    "reference answer, or an unanswerable question abstained on"
)
PLOT = "cost_quality.png"
_SWEEP_GRID = [-1.0, -0.3, -0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0]
_mean = mean


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
        # records made before the figure existed have none: the mean is over those that have it, or unknown
        "f1_beyond_question": _mean(r["f1_beyond_question"] for r in answerable if "f1_beyond_question" in r),
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
        "flags": flag_counts(answers),
        "llm_prompt_tokens": sum(int((r.get("cost") or {}).get("llm_prompt_tokens", 0)) for r in answers),
        "llm_completion_tokens": sum(int((r.get("cost") or {}).get("llm_completion_tokens", 0)) for r in answers),
        "llm_tokens_per_answer": _per(sum(_tokens(r) for r in answers), n),
        "p50_latency_ms": percentile(latencies, 50),
        "p95_latency_ms": percentile(latencies, 95),
        "cost_per_answer_usd": _per(local, n),
        "cost_per_correct_answer_usd": _per(local, correct),
        "cost_per_answer_usd_api_equivalent": _per(api, n),
        "cost_per_correct_answer_usd_api_equivalent": _per(api, correct),
        "errors": sum(1 for r in answers if r["path"] == "error"),
    }


def flag_counts(answers: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many answers raised each flag of penny.FLAGS, by name (details dropped); every name appears."""
    raised = Counter(name for r in answers for name in {flag_name(flag) for flag in r.get("flags", [])})
    return {name: raised[name] for name in FLAGS}


# ---------------------------------------------------------------- threshold sweep


@dataclass(frozen=True)
class SweepPoint:
    threshold: float  # the router's min_gain (PENNY_ROUTER_MIN_GAIN); inf: always the LLM; nan: as measured
    llm_share: float
    accuracy: float
    answer_f1: float
    cost_per_answer_usd: float
    cost_per_answer_usd_api_equivalent: float


def estimates(record: dict[str, Any], model: CorrectnessModel) -> tuple[float, float]:
    """P(passage correct), P(LLM correct) of a passage record, recomputed from its features with `model` (so a refit
    is replayed without re-answering); the recorded ones when it has no features."""
    if record.get("features"):
        return model.estimate(record["features"])
    return record.get("p_passage", 0.0), record.get("p_llm", 0.0)


def replay_router(
    passages: Sequence[dict[str, Any]],
    llm: Sequence[dict[str, Any]],
    min_gain: float,
    abstain_floor: float,
    model: CorrectnessModel | None = None,
) -> list[dict[str, Any]]:
    """The record the router would have produced for each question at this min_gain, from the recorded passage and
    LLM outcomes, by answer.policy.route itself: an abstention costs what the passage answer cost."""
    model = model or CorrectnessModel.packaged()
    policy = Policy(abstain_floor=abstain_floor, min_gain=min_gain)
    routed = []
    for by_passage, by_llm in zip(passages, llm, strict=True):
        found = by_passage["path"] != "abstain"  # the passages strategy abstains only when nothing was found
        p_passage, p_llm = estimates(by_passage, model)
        path = route(route_inputs(by_passage["question"], found, by_passage["confidence"], p_passage, p_llm), policy)
        if path == "abstain":
            correct = by_passage["unanswerable"]
            routed.append(
                by_passage
                | {
                    "path": "abstain",
                    "abstained": True,
                    "correct": correct,
                    "answer_f1": 0.0,
                    "answer_recall": 0.0,
                    "similarity": 0.0,
                }
            )
        elif path == "passages":
            routed.append(by_passage)
        else:
            routed.append(by_llm)
    return routed


def _paired_records(records: dict[str, dict[str, dict[str, Any]]]) -> tuple[list, list] | None:
    if "passages" not in records or "llm" not in records:
        return None
    qids = sorted(q for q in records["llm"] if q in records["passages"] and records["llm"][q]["graded"])
    if not qids:
        return None
    return [records["passages"][q] for q in qids], [records["llm"][q] for q in qids]


def sweep(records: dict[str, dict[str, dict[str, Any]]], abstain_floor: float) -> dict[str, Any] | None:
    """The router's cost-quality curve over min_gain, on the graded questions answered by both the passages and
    the llm strategies, and the cheapest min_gain whose accuracy is at least always-LLM's."""
    paired = _paired_records(records)
    if paired is None:
        return None
    passages, llm = paired
    model = CorrectnessModel.packaged()
    points = [_point(t, replay_router(passages, llm, t, abstain_floor, model)) for t in _SWEEP_GRID]
    always_llm = _point(math.inf, llm)
    passages_only = _point(1.0, replay_router(passages, llm, 1.0, 0.0, model))
    good_enough = [p for p in points if p.accuracy >= always_llm.accuracy - 1e-12]
    best = min(good_enough, key=lambda p: (p.cost_per_answer_usd, -p.accuracy, -p.threshold), default=None)
    result: dict[str, Any] = {
        "n": len(passages),
        "quality": "accuracy (share correct)",
        "abstain_floor": abstain_floor,
        "always_llm": _as_dict(always_llm),
        "passages_only": _as_dict(passages_only),
        "operating_point": _as_dict(best) if best else None,
        "most_accurate_point": _as_dict(max(points, key=lambda p: (p.accuracy, -p.cost_per_answer_usd))),
        "points": [_as_dict(p) for p in points],
    }
    if "routed" in records:
        measured = [records["routed"][r["qid"]] for r in passages if r["qid"] in records["routed"]]
        if len(measured) == len(passages):
            result["routed_measured"] = _as_dict(_point(math.nan, measured))
    return result


def replayed_routed(records: dict[str, dict[str, dict[str, Any]]], settings) -> dict[str, dict[str, Any]] | None:
    """Routed answers replayed at the configured min_gain, for a run with passage and LLM answers only."""
    paired = _paired_records(records)
    if paired is None or "routed" in records:
        return None
    routed = replay_router(*paired, settings.router_min_gain, settings.abstain_floor)
    return {r["qid"]: r | {"strategy": "routed"} for r in routed}


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
        axis.plot(
            [p[field] * 1000 for p in curve],
            [p["accuracy"] for p in curve],
            "-",
            color="0.6",
            marker=".",
            label="router, min-gain sweep",
        )
        marks = [
            ("passages_only", "s", "passages only"),
            ("always_llm", "^", "always LLM"),
            ("routed_measured", "o", "routed (measured)"),
            ("operating_point", "*", "operating point"),
        ]
        for key, marker, name in marks:
            point = result.get(key)
            if point:
                axis.plot(
                    point[field] * 1000, point["accuracy"], marker, markersize=11 if marker == "*" else 8, label=name
                )
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
    replayed = replayed_routed(by_strategy, run.settings)
    if replayed:
        by_strategy["routed"] = replayed
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
            "router_min_gain": settings.router_min_gain,
            "abstain_floor": settings.abstain_floor,
            "usd_per_cpu_core_hour": settings.usd_per_cpu_core_hour,
            "api_usd_per_1m_prompt": settings.api_usd_per_1m_prompt,
            "api_usd_per_1m_completion": settings.api_usd_per_1m_completion,
        },
        "correct_definition": CORRECT_DEFINITION,
        "routed_replayed": bool(replayed),
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
    """Issue 10's targets on the questions both answered: routed accuracy >= always-LLM's, routed F1 >= always-LLM's
    - 0.02, >= 80 % of answers with zero LLM tokens, cost per correct answer <= 1/10 of always-LLM's (local and
    API-equivalent). Each is True, False or None (unknown: a figure it needs is missing)."""
    routed, llm = paired.get("routed"), paired.get("llm")
    if not routed or not llm or not routed["n"]:
        return None

    def ratio(key: str) -> float | None:
        if routed[key] is None or not llm[key]:
            return None
        return routed[key] / llm[key]

    def check(value: float | None, ok) -> bool | None:
        return None if value is None else bool(ok(value))

    f1_gap = None if routed["answer_f1"] is None or llm["answer_f1"] is None else routed["answer_f1"] - llm["answer_f1"]
    accuracy_gap = (
        None if routed["accuracy"] is None or llm["accuracy"] is None else routed["accuracy"] - llm["accuracy"]
    )
    local, api = ratio("cost_per_correct_answer_usd"), ratio("cost_per_correct_answer_usd_api_equivalent")
    return {
        "accuracy_at_least_llm": check(accuracy_gap, lambda gap: gap >= -1e-12),
        "f1_within_002_of_llm": check(f1_gap, lambda gap: gap >= -0.02),
        "no_llm_share_at_least_80pct": check(routed["no_llm_share"], lambda share: share >= 0.8),
        "local_cost_per_correct_at_most_one_tenth": check(local, lambda r: r <= 0.1),
        "api_cost_per_correct_at_most_one_tenth": check(api, lambda r: r <= 0.1),
        "n": routed["n"],
        "accuracy": {"routed": routed["accuracy"], "llm": llm["accuracy"]},
        "answer_f1": {"routed": routed["answer_f1"], "llm": llm["answer_f1"]},
        "no_llm_share": routed["no_llm_share"],
        "local_cost_per_correct_ratio": local,
        "api_cost_per_correct_ratio": api,
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
    ("n", "n", "{:d}"),
    ("recall@10", "R@10", "{:.3f}"),
    ("mrr@10", "MRR@10", "{:.3f}"),
    ("ndcg@10", "nDCG@10", "{:.3f}"),
    ("context_answer_recall@10", "ctx ans. recall@10", "{:.3f}"),
    ("answer_f1", "F1", "{:.3f}"),
    ("f1_beyond_question", "F1 beyond q.", "{:.3f}"),
    ("answer_recall", "ans. recall", "{:.3f}"),
    ("answer_similarity", "emb. sim.", "{:.3f}"),
    ("accuracy", "accuracy", "{:.3f}"),
    ("abstention_precision", "abst. P", "{:.2f}"),
    ("abstention_recall", "abst. R", "{:.2f}"),
    ("no_llm_share", "no-LLM", "{:.0%}"),
    ("llm_tokens_per_answer", "LLM tok/ans", "{:.0f}"),
    ("p50_latency_ms", "p50 ms", "{:.0f}"),
    ("p95_latency_ms", "p95 ms", "{:.0f}"),
    ("cost_per_answer_usd", "$/answer local", "{:.2e}"),
    ("cost_per_correct_answer_usd", "$/correct local", "{:.2e}"),
    ("cost_per_answer_usd_api_equivalent", "$/answer API-eq.", "{:.2e}"),
    ("cost_per_correct_answer_usd_api_equivalent", "$/correct API-eq.", "{:.2e}"),
]


def table(strategies: dict[str, dict[str, Any]]) -> str:
    """A Markdown table, one row per strategy; `-` where a figure does not apply."""
    lines = ["| strategy | " + " | ".join(label for _, label, _ in _COLUMNS) + " |", "|---|" + "---:|" * len(_COLUMNS)]
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
        f"`{report['settings']['llm_model']}`, router min gain {report['settings']['router_min_gain']}, "
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
    parts += ["", "## Flags: what happened on the way (penny.FLAGS)", "", *_flag_lines(report["strategies"])]
    if report.get("targets"):
        parts += ["", "## Targets (routed against always-LLM, like for like)", "", *_target_lines(report["targets"])]
    sweep_result = report["sweep"]
    if sweep_result:
        parts += [
            "",
            "## Router sweep over PENNY_ROUTER_MIN_GAIN",
            "",
            *_sweep_lines(sweep_result),
            "",
            f"![cost-quality]({PLOT})",
        ]
    return "\n".join(parts) + "\n"


def _flag_lines(strategies: dict[str, dict[str, Any]]) -> list[str]:
    """One row per flag some strategy raised, with its meaning from penny.FLAGS."""
    raised = [name for name in FLAGS if any(figures["flags"].get(name) for figures in strategies.values())]
    if not raised:
        return ["No answer raised a flag."]
    lines = ["| flag | meaning | " + " | ".join(strategies) + " |", "|---|---|" + "---:|" * len(strategies)]
    for name in raised:
        counts = " | ".join(str(figures["flags"].get(name, 0)) for figures in strategies.values())
        lines.append(f"| `{name}` | {FLAGS[name]} | {counts} |")
    return lines


def _sweep_lines(result: dict[str, Any]) -> list[str]:
    def describe(point: dict[str, Any]) -> str:
        return (
            f"accuracy {point['accuracy']:.3f}, F1 {point['answer_f1']:.3f}, {point['llm_share']:.0%} to the "
            f"LLM, ${point['cost_per_answer_usd'] * 1000:.4f} local / "
            f"${point['cost_per_answer_usd_api_equivalent'] * 1000:.4f} API-eq. per 1,000 answers"
        )

    lines = [
        f"Replayed from the recorded passage and LLM answers of {result['n']} questions "
        f"(abstain floor {result['abstain_floor']}); quality = {result['quality']}.",
        "",
        f"- always LLM: {describe(result['always_llm'])}",
        f"- passages only: {describe(result['passages_only'])}",
    ]
    if result.get("routed_measured"):
        lines.append(f"- routed as measured: {describe(result['routed_measured'])}")
    best = result["operating_point"]
    if best:
        where = "always the LLM" if best["threshold"] is None else f"min gain {best['threshold']:.2f}"
        lines.append(f"- **operating point** (cheapest with accuracy >= always LLM): {where}: {describe(best)}")
    top = result.get("most_accurate_point")
    if top:
        where = "always the LLM" if top["threshold"] is None else f"min gain {top['threshold']:.2f}"
        lines.append(f"- most accurate min gain (cheapest among equals): {where}: {describe(top)}")
    lines += [
        "",
        "| min gain | to LLM | accuracy | F1 | $/1k answers local | $/1k API-eq. |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for point in result["points"]:
        shown = "∞" if point["threshold"] is None else f"{point['threshold']:.2f}"
        lines.append(
            f"| {shown} | {point['llm_share']:.0%} | {point['accuracy']:.3f} | {point['answer_f1']:.3f} "
            f"| {point['cost_per_answer_usd'] * 1000:.4f} "
            f"| {point['cost_per_answer_usd_api_equivalent'] * 1000:.4f} |"
        )
    return lines


def _verdict(ok: bool | None) -> str:
    return "unknown" if ok is None else "met" if ok else "**not met**"


def _figure(value: float | None, fmt: str) -> str:
    return "unknown" if value is None else fmt.format(value)


def _target_lines(result: dict[str, Any]) -> list[str]:
    accuracy, f1 = result["accuracy"], result["answer_f1"]
    return [
        f"- accuracy >= always-LLM: routed {_figure(accuracy['routed'], '{:.3f}')} vs "
        f"{_figure(accuracy['llm'], '{:.3f}')}: {_verdict(result['accuracy_at_least_llm'])}",
        f"- F1 >= always-LLM F1 - 0.02: routed {_figure(f1['routed'], '{:.3f}')} vs {_figure(f1['llm'], '{:.3f}')}: "
        f"{_verdict(result['f1_within_002_of_llm'])}",
        f"- >= 80 % of answers with zero LLM tokens: {_figure(result['no_llm_share'], '{:.0%}')}: "
        f"{_verdict(result['no_llm_share_at_least_80pct'])}",
        f"- cost per correct answer <= 1/10 of always-LLM's: local "
        f"{_figure(result['local_cost_per_correct_ratio'], '{:.3f}x')} "
        f"({_verdict(result['local_cost_per_correct_at_most_one_tenth'])}), API-equivalent "
        f"{_figure(result['api_cost_per_correct_ratio'], '{:.3f}x')} "
        f"({_verdict(result['api_cost_per_correct_at_most_one_tenth'])})",
    ]
