"""torch and int8 ONNX embedding side by side in one run: CPU-ms per passage, agreement, dense retrieval quality.

For each dev set with qrels the corpus (title + text, as ingestion embeds it) and its labelled queries are embedded
by both backends on the same thread count, alternating backend per batch so that outside load hits both alike;
dense exact search then gives Recall@10 and MRR@10 per backend. Run: `python -m eval.bench_encoder [--limit N]`.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from eval.datasets import load_beir, shared_data_dir
from penny import Settings
from retrieval.embedder import Embedder
from retrieval.indexer import index_text

BACKENDS = ("torch", "onnx-int8")


def embed_alternating(embedders: dict[str, Embedder], texts: list[str], batch: int) -> tuple[dict, dict]:
    vectors = {name: [] for name in embedders}
    cpu = dict.fromkeys(embedders, 0.0)
    for start in range(0, len(texts), batch):
        for name, embedder in embedders.items():
            began = time.process_time()
            vectors[name].append(embedder.embed(texts[start : start + batch]))
            cpu[name] += time.process_time() - began
    return {name: np.concatenate(parts) for name, parts in vectors.items()}, cpu


def quality(corpus_vectors, ids, query_vectors, queries, qrels, k: int = 10) -> tuple[float, float]:
    recalls, reciprocal = [], []
    indexed = set(ids)
    for query, vector in zip(queries, query_vectors, strict=True):
        relevant = {doc for doc, grade in qrels[query.id].items() if grade > 0} & indexed
        top = [ids[i] for i in np.argsort(-(corpus_vectors @ vector))[:k]]
        recalls.append(len(relevant & set(top)) / len(relevant))
        reciprocal.append(next((1 / (rank + 1) for rank, doc in enumerate(top) if doc in relevant), 0.0))
    return float(np.mean(recalls)), float(np.mean(reciprocal))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="At most this many passages per set.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    root = shared_data_dir()
    embedders = {
        name: Embedder(Settings(embed_backend=name, embed_threads=args.threads, search_threads=args.threads))
        for name in BACKENDS
    }
    print(f"load before: {os.getloadavg()[0]:.2f}; {args.threads} thread(s)")
    print("| set | passages | queries | backend | CPU-ms/passage | mean cosine to torch | dense R@10 | MRR@10 |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name in ("tatqa-dev", "msmarco-sample"):
        if not (root / name).exists():
            continue
        dataset = load_beir(root / name)
        records = dataset.corpus[: args.limit] if args.limit else dataset.corpus
        kept = {record.id for record in records}
        queries = [q for q in dataset.labelled_queries() if {d for d, g in dataset.qrels[q.id].items() if g > 0} & kept]
        texts = [index_text(record.title, "", record.text) for record in records]
        passages, cpu = embed_alternating(embedders, texts, 32)
        asked, _ = embed_alternating(embedders, [q.text for q in queries], 1)
        ids = [record.id for record in records]
        for backend in BACKENDS:
            cosine = float((passages[backend] * passages["torch"]).sum(axis=1).mean())
            recall, mrr = quality(passages[backend], ids, asked[backend], queries, dataset.qrels)
            print(
                f"| {name} | {len(texts)} | {len(queries)} | {backend} | {1000 * cpu[backend] / len(texts):.1f} | "
                f"{cosine:.4f} | {recall:.4f} | {mrr:.4f} |"
            )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
