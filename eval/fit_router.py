"""Fit the router's correctness estimates (answer/correctness.json) on graded `penny eval` records, and report
their calibration across sets: each set's ECE under a model fitted on the other sets only, beside its ECE under the
estimates that ship (write a refit only where it beats those).

    python -m eval.fit_router sample=OUT1/results.jsonl,LLM1/results.jsonl tatqa-dev=OUT2/results.jsonl ... \\
        [--write answer/correctness.json]

A set may name several results files (comma-separated: e.g. a passages run and an LLM run of the same sample).
With fewer than MIN_LLM_LABELS graded LLM answers in all, the packaged LLM model is kept, and the note says so.

The passage model learns from the `passages` records (their features and whether they were correct), the LLM model
from the `llm` records joined by question with the features of that question's passage record.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from answer.correctness import EVIDENCE, FEATURES, PACKAGED
from eval.runner import load_records

MIN_LLM_LABELS = 60
L2 = 1.0  # ridge on the weights (not the bias): a few hundred labels per set, a dozen features
BINS = 10


def rows(paths: list[Path]) -> tuple[list[tuple[dict, bool]], list[tuple[dict, bool]]]:
    """(passage rows, llm rows) of one set's results files: each a features dict with the correctness label."""
    records = [r for path in paths for r in load_records(path) if r["kind"] == "answer" and r.get("graded")]
    features = {r["qid"]: r["features"] for r in records if r["strategy"] == "passages" and r.get("features")}
    passage = [
        (features[r["qid"]], bool(r["correct"]))
        for r in records
        if r["strategy"] == "passages" and r["qid"] in features
    ]
    llm = [(features[r["qid"]], bool(r["correct"])) for r in records if r["strategy"] == "llm" and r["qid"] in features]
    return passage, llm


def fit(data: list[tuple[dict, bool]]) -> dict:
    """L2-regularised logistic regression with the evidence weights kept non-negative."""
    x = np.array([[values.get(name, 0.0) for name in FEATURES] for values, _ in data], dtype=float)
    y = np.array([label for _, label in data], dtype=float)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta[1:] + theta[0]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-9
        value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + L2 * np.sum(theta[1:] ** 2) / len(y)
        grad = np.concatenate([[np.mean(p - y)], x.T @ (p - y) / len(y) + 2 * L2 * theta[1:] / len(y)])
        return value, grad

    bounds = [(None, None)] + [(0.0, None) if name in EVIDENCE else (None, None) for name in FEATURES]
    theta = minimize(loss, np.zeros(len(FEATURES) + 1), jac=True, method="L-BFGS-B", bounds=bounds).x
    return {
        "weights": {name: round(float(w), 4) for name, w in zip(FEATURES, theta[1:], strict=True)},
        "bias": round(float(theta[0]), 4),
    }


def predict(model: dict, values: dict) -> float:
    z = model["bias"] + sum(w * values.get(name, 0.0) for name, w in model["weights"].items())
    return float(1.0 / (1.0 + np.exp(-z)))


def ece(model: dict, data: list[tuple[dict, bool]]) -> float | None:
    """Expected calibration error: |mean estimate - share correct| per equal-width bin, weighted by the bin's size."""
    if not data:
        return None
    p = np.array([predict(model, values) for values, _ in data])
    y = np.array([label for _, label in data], dtype=float)
    bins = np.minimum((p * BINS).astype(int), BINS - 1)
    return float(
        sum(abs(p[bins == b].mean() - y[bins == b].mean()) * np.sum(bins == b) for b in np.unique(bins)) / len(y)
    )


def cross_set(sets: dict[str, list[tuple[dict, bool]]], shipped: dict) -> dict[str, dict]:
    """Per set: its ECE under a model fitted on the other sets and under the `shipped` one (a refit is worth
    writing only where it beats that), its size and its share correct."""
    report = {}
    for held_out, data in sets.items():
        train = [row for name, other in sets.items() if name != held_out for row in other]
        if not data or not train:
            continue
        report[held_out] = {
            "n": len(data),
            "share_correct": round(sum(label for _, label in data) / len(data), 3),
            "ece_held_out": round(ece(fit(train), data), 3),
            "ece_shipped": round(ece(shipped, data), 3),
        }
    return report


def fitted(sets: dict[str, list[tuple[dict, bool]]], shipped: dict) -> dict:
    """One model fitted on every set's rows, with its in-sample ECE and each set's held-out comparison."""
    every = [row for data in sets.values() for row in data]
    model = fit(every)
    return model | {"ece_in_sample": round(ece(model, every), 3), "ece_by_held_out_set": cross_set(sets, shipped)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", metavar="NAME=RESULTS", help="a set's name and its results.jsonl")
    parser.add_argument("--write", type=Path, help=f"write the fitted model here (e.g. {PACKAGED})")
    args = parser.parse_args()
    passage_sets, llm_sets = {}, {}
    for item in args.sets:
        name, path = item.split("=", 1)
        passage_sets[name], llm_sets[name] = rows([Path(part) for part in path.split(",")])
    shipped = json.loads(PACKAGED.read_text())
    every_passage = [row for data in passage_sets.values() for row in data]
    every_llm = [row for data in llm_sets.values() for row in data]
    if len(every_llm) >= MIN_LLM_LABELS:
        llm_model = fitted(llm_sets, shipped["llm"])
    else:
        kept = shipped["llm"]
        llm_model = kept | {
            "kept": f"only {len(every_llm)} graded LLM answers: the packaged LLM model is kept",
            "ece_in_sample": ece(kept, every_llm),
        }
    model = {
        "note": f"fitted by eval/fit_router.py on {len(every_passage)} passage and {len(every_llm)} LLM answers "
        f"({', '.join(f'{n} {len(d)}/{len(llm_sets[n])}' for n, d in passage_sets.items())})",
        "fitted_at": datetime.date.today().isoformat(),
        "passage": fitted(passage_sets, shipped["passage"]),
        "llm": llm_model,
    }
    print(json.dumps(model, indent=2))
    if args.write:
        args.write.write_text(json.dumps(model, indent=2) + "\n")
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
