"""Search latency and HNSW recall on synthetic indexes of the given sizes (how they are built: eval/scale_runs.py).

python -m eval.bench_scale 100000 1000000 --queries 200
"""

from __future__ import annotations

import argparse

from eval.scale_runs import print_latency, scale_latency


def main() -> None:
    parser = argparse.ArgumentParser(description="Latency and HNSW recall on synthetic indexes of the given sizes.")
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    measured = []
    for requested in args.sizes:
        measured.extend(scale_latency(requested, args.queries))
    print_latency(measured)


if __name__ == "__main__":
    main()
