"""Fit the retrieval confidence on the dev sets and write retrieval/confidence.json.

    .venv/bin/python -m eval.fit_confidence [--dry-run]

Label: 1 when the top fused passage is relevant by the qrels (msmarco-sample, tatqa-dev unscoped and scoped;
ocp-4.15 has no passage labels). Model: logistic regression with every weight kept non-negative (each feature
grows with the evidence), fitted by L-BFGS-B with a small L2 penalty. Its calibration is reported from 5-fold
cross-validation (each query scored by a model that never saw it), then the model is refitted on everything.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.optimize import minimize

from eval.retrieval_devsets import dev_sets
from eval.retrieval_runs import collect_cached, confidence_rows, reliability
from penny import Settings
from retrieval.confidence import FEATURES, PACKAGED
from retrieval.fusion import FusionMethod
from retrieval.search import Searcher

console = Console(width=160)
L2 = 1e-3
FOLDS = 5


def fit_logistic(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights (all >= 0) and bias minimising mean log loss plus L2 on the weights."""

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = params[:-1], params[-1]
        z = xs @ weights + bias
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-12
        value = -np.mean(ys * np.log(p + eps) + (1 - ys) * np.log(1 - p + eps)) + L2 * weights @ weights
        residual = (p - ys) / len(ys)
        gradient = np.concatenate([xs.T @ residual + 2 * L2 * weights, [residual.sum()]])
        return value, gradient

    start = np.zeros(xs.shape[1] + 1)
    bounds = [(0.0, None)] * xs.shape[1] + [(None, None)]
    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return found.x[:-1], float(found.x[-1])


def predict(xs: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(xs @ weights + bias)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="Report only; do not write confidence.json.")
    args = parser.parse_args()

    method = FusionMethod.from_settings(Settings())
    rows, labels, set_of = [], [], []
    searchers: dict[str, Searcher] = {}
    for devset in dev_sets(ocp_questions=0):
        if devset.labels != "qrels":
            continue
        searcher = searchers.setdefault(str(devset.settings.data_dir), Searcher(devset.settings))
        xs, ys = confidence_rows(devset, collect_cached(devset, searcher), method)
        rows.append(xs)
        labels.append(ys)
        set_of.extend([devset.name] * len(ys))
    xs, ys, set_of = np.concatenate(rows), np.concatenate(labels), np.array(set_of)

    rng = np.random.default_rng(11)
    fold = rng.permutation(len(ys)) % FOLDS
    held_out = np.zeros(len(ys))
    for f in range(FOLDS):
        weights, bias = fit_logistic(xs[fold != f], ys[fold != f])
        held_out[fold == f] = predict(xs[fold == f], weights, bias)

    table = Table("set", "queries", "top-1 relevant", "mean confidence", "ECE (5-fold)", title=f"fusion {method}")
    for name in dict.fromkeys(set_of):
        inside = set_of == name
        ece, _ = reliability(held_out[inside], ys[inside])
        table.add_row(
            name, str(inside.sum()), f"{ys[inside].mean():.3f}", f"{held_out[inside].mean():.3f}", f"{ece:.3f}"
        )
    ece_all, bins = reliability(held_out, ys)
    table.add_row("all", str(len(ys)), f"{ys.mean():.3f}", f"{held_out.mean():.3f}", f"{ece_all:.3f}")
    console.print(table)
    reliability_table = Table(
        "confidence", "queries", "mean confidence", "top-1 relevant", title="reliability (5-fold)"
    )
    for label, count, confidence, accuracy in bins:
        reliability_table.add_row(label, str(count), f"{confidence:.3f}", f"{accuracy:.3f}")
    console.print(reliability_table)

    weights, bias = fit_logistic(xs, ys)
    fitted = {name: round(float(w), 4) for name, w in zip(FEATURES, weights, strict=True)}
    console.print(f"weights {fitted}, bias {bias:.4f}")
    if args.dry_run:
        return
    note = (
        f"fitted by eval/fit_confidence.py on {len(ys)} dev queries ({', '.join(dict.fromkeys(set_of))}) "
        f"with fusion {method}; 5-fold ECE {ece_all:.3f}"
    )
    PACKAGED.write_text(
        json.dumps(
            {
                "note": note,
                "fitted_at": datetime.now(UTC).strftime("%Y-%m-%d"),
                "fusion": str(method),
                "weights": fitted,
                "bias": round(bias, 4),
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {PACKAGED}")


if __name__ == "__main__":
    main()
