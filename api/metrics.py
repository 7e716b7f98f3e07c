"""Prometheus metrics, in a registry of the app's own (so several apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from penny import Answer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.answers = Counter("penny_answers", "Answers given, by path", ["path"], registry=r)
        self.answer_seconds = Histogram(
            "penny_answer_seconds", "Wall time of answers, by path", ["path"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.llm_tokens = Counter("penny_llm_tokens", "LLM tokens, by kind (prompt|completion)", ["kind"], registry=r)
        self.cost_usd = Counter(
            "penny_cost_usd",
            "Money spent on answers: local, and what hosted-API tokens would cost",
            ["kind"],
            registry=r,
        )
        self.cache_hits = Counter("penny_cache_hits", "Answers served from the answer cache", registry=r)
        self.searches = Counter("penny_searches", "Searches served by /v1/search", registry=r)
        self.search_seconds = Histogram(
            "penny_search_seconds", "Wall time of /v1/search", buckets=LATENCY_BUCKETS, registry=r
        )
        self.llm_queue = Gauge("penny_llm_queue", "LLM requests waiting or running", registry=r)
        self.llm_rejected = Counter("penny_llm_rejected", "LLM requests refused because the queue was full", registry=r)
        self.ingest_jobs = Counter(
            "penny_ingest_jobs", "Ingestion jobs started over the API, by outcome", ["status"], registry=r
        )
        self.ingest_documents = Counter(
            "penny_ingest_documents", "Documents changed by API ingestion jobs, by outcome", ["outcome"], registry=r
        )
        self.ingest_chunks = Counter("penny_ingest_chunks", "Chunks added by API ingestion jobs", registry=r)
        self.rate_limited = Counter("penny_rate_limited", "Requests refused by the per-key rate limit", registry=r)

    def observe_answer(self, answer: Answer, seconds: float) -> None:
        self.answers.labels(answer.path).inc()
        self.answer_seconds.labels(answer.path).observe(seconds)
        cost = answer.cost
        self.llm_tokens.labels("prompt").inc(cost.llm_prompt_tokens)
        self.llm_tokens.labels("completion").inc(cost.llm_completion_tokens)
        self.cost_usd.labels("local").inc(cost.usd_local)
        self.cost_usd.labels("api_equivalent").inc(cost.usd_api_equivalent)
        if answer.path == "cache":
            self.cache_hits.inc()

    def observe_ingest(self, status: str, counts: dict[str, int]) -> None:
        self.ingest_jobs.labels(status).inc()
        for outcome in ("added", "updated", "removed", "failed", "skipped"):
            self.ingest_documents.labels(outcome).inc(counts.get(outcome, 0))
        self.ingest_chunks.inc(counts.get("chunks_added", 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
