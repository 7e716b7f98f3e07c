"""Ingestion on a Ray cluster: files are parsed as Ray tasks and chunks embedded by a pool of embedder actors, while
the rest of the job (examining files, writing the catalogue, publishing the segment) runs in this process exactly as
a local job's does: it is `ingest.pipeline.ingest` with other `Workers`, so the catalogue and the index keep one
writer and the result is the one local ingestion gives.

A parse task whose worker process or node dies is run again, and so is a call to an embedder actor that dies, once
Ray has restarted the actor (PENNY_CLUSTER_RETRIES times each). A file a parser refuses is no death: it comes back
as a failed `Parsed`, as it does locally.

Ray is the optional `cluster` extra: it is imported here only, and only when a cluster job runs. Every node needs
the same Penny install, the prepared embedding model in PENNY_MODELS_DIR, and the files at the paths this process
sees them at (docs/scaling.md).
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ingest.job import JobReport, Progress
from ingest.parallel import Parsed, ParseJob, parse_file, parse_jobs
from ingest.pipeline import IngestRequest, Workers, ingest
from penny import PennyError, Settings
from retrieval.embedder import Embedder, embedding_key

log = logging.getLogger("penny.ingest")

# A worker on another node does not run Penny's import-time defaults before the libraries it loads: set them there.
_WORKER_ENV = {
    name: "1" for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DO_NOT_TRACK", "UNSTRUCTURED_DISABLE_NOTICE")
} | {"TOKENIZERS_PARALLELISM": "false"}

# Parse tasks submitted ahead of the one the job waits for, per core of the cluster: enough to keep every core busy
# while results are taken in order, few enough that a million files are not a million pending tasks.
_TASKS_AHEAD_PER_CORE = 4
# How long embedder actors may take to start (a new worker process, Penny's imports) before the pool goes without them.
_PLACEMENT_SECONDS = 60


class ClusterUnavailable(PennyError):
    code = "cluster_unavailable"


@dataclass(frozen=True)
class ClusterJob:
    """A job's report, and how its work split across the cluster's nodes (by node address)."""

    report: JobReport
    files_parsed: dict[str, int]
    texts_embedded: dict[str, int]  # chunks, then the answer sentences of the version it published


def cluster_ingest(
    settings: Settings, request: IngestRequest, address: str, progress: Progress | None = None
) -> ClusterJob:
    """Run one ingestion job with parsing and embedding on the Ray cluster at `address` (see `connected`)."""
    with connected(address):
        workers = RayWorkers(settings)
        try:
            report = ingest(settings, request, progress, workers.workers())
        finally:
            workers.close()
    return ClusterJob(report, dict(workers.parsed_on), dict(workers.embedded_on))


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ClusterUnavailable(
            "Ray is not installed: install the cluster extra (pip install -e '.[cluster]') on every node"
        ) from exc
    return ray


@contextmanager
def connected(address: str) -> Iterator[None]:
    """This process connected to Ray for the body: "local" starts a single-node cluster here; "auto" joins the one
    `ray start` runs on this machine; HOST:PORT (or ray://HOST:PORT) joins that cluster's head. A connection this
    process already has is used as it is, and left open."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    extra = {"include_dashboard": False} if address == "local" else {}
    try:
        ray.init(address=address, runtime_env={"env_vars": _WORKER_ENV}, logging_level=logging.WARNING, **extra)
    except ConnectionError as exc:
        raise ClusterUnavailable(
            f"no Ray cluster at {address!r}: start one with `ray start --head` (docs/scaling.md), or use --cluster "
            f"local for one on this machine ({exc})"
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()


class RayWorkers:
    """Parsing as Ray tasks and embedding on a pool of actors, behind ingest.pipeline's `Workers`; counts the work
    each node did. `parse` is what a task runs on one file (ingest.parallel.parse_file)."""

    def __init__(self, settings: Settings, parse: Callable[[ParseJob], Parsed] = parse_file) -> None:
        self.settings = for_workers(settings)
        self.parse = parse
        self.parsed_on: Counter[str] = Counter()
        self.embedded_on: Counter[str] = Counter()
        self._pool: PoolEmbedder | None = None

    def workers(self) -> Workers:
        return Workers(parse=self.parse_files, embedder=self.embedder)

    def parse_files(self, paths: list[str], settings: Settings, within: Mapping[str, str | None]) -> Iterator[Parsed]:
        """Parse `paths` as one task each, yielding in the order of `paths` (as ingest.parallel.parse_files does:
        the order decides the new documents' ids)."""
        ray = import_ray()
        task = ray.remote(_parse_on_node).options(num_cpus=1, max_retries=self.settings.cluster_retries)
        parse = ray.put(self.parse)
        ahead = _TASKS_AHEAD_PER_CORE * max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending: deque = deque()
        for job in parse_jobs(paths, settings, within):
            pending.append(task.remote(parse, job))
            if len(pending) >= ahead:
                yield self._take(ray, pending.popleft())
        while pending:
            yield self._take(ray, pending.popleft())

    def _take(self, ray, ref) -> Parsed:
        node, parsed = ray.get(ref)
        self.parsed_on[node] += 1
        return parsed

    def embedder(self, settings: Settings) -> PoolEmbedder:
        if self._pool is None:
            self._pool = PoolEmbedder(self.settings, self.embedded_on)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def for_workers(settings: Settings) -> Settings:
    """Settings as a worker elsewhere must read them: absolute folders (a worker's current folder is not ours), and
    one thread per embedder (each actor holds one core)."""
    return settings.model_copy(
        update={
            "data_dir": settings.data_dir.resolve(),
            "models_dir": settings.models_dir.resolve(),
            "embed_threads": 1,
        }
    )


def _parse_on_node(parse: Callable[[ParseJob], Parsed], job: ParseJob) -> tuple[str, Parsed]:
    import ray

    return ray.util.get_node_ip_address(), parse(job)


class PoolEmbedder:
    """The batch surface of retrieval's Embedder (`cache_key`, `batch_size`, `embed`) over a pool of embedder actors,
    so that retrieval.indexer.embed_missing drives it as it drives a local Embedder, committing each batch of
    vectors as it comes back. The actors start at the first batch, when parsing no longer needs the cores."""

    def __init__(self, settings: Settings, embedded_on: Counter[str]) -> None:
        self.settings = settings
        self.cache_key = embedding_key(settings)
        self.embedded_on = embedded_on
        self.actors: list = []
        self._pool = None
        self._count = 0

    @property
    def batch_size(self) -> int:
        # embed_missing hands over 4x this per call: four batches for every actor
        return self.settings.embed_batch_size * self._size()

    def embed(self, texts: list[str]) -> np.ndarray:
        pool = self._started()
        size = self.settings.embed_batch_size
        parts = [texts[i : i + size] for i in range(0, len(texts), size)]
        results = list(pool.map(lambda actor, part: actor.embed.remote(part), parts))
        for node, vectors in results:
            self.embedded_on[node] += len(vectors)
        return np.concatenate([vectors for _, vectors in results]) if results else np.zeros((0, 0), np.float32)

    def _size(self) -> int:
        if not self._count:
            ray = import_ray()
            self._count = self.settings.cluster_embedders or max(1, int(ray.cluster_resources().get("CPU", 1)))
        return self._count

    def _started(self):
        if self._pool is None:
            ray = import_ray()
            from ray.util import ActorPool

            retries = self.settings.cluster_retries
            actor = ray.remote(EmbedderActor).options(num_cpus=1, max_restarts=retries, max_task_retries=retries)
            self.actors = self._placed(ray, [actor.remote(self.settings) for _ in range(self._size())])
            self._count = len(self.actors)
            self._pool = ActorPool(self.actors)
            log.info("embedding on %d actors", len(self.actors))
        return self._pool

    def _placed(self, ray, actors: list) -> list:
        """The actors that started within _PLACEMENT_SECONDS (at least one, however long it takes); the rest are
        ended. A core held by something else (a Serve replica) would leave an actor pending, and its batches with
        it, for ever."""
        started = {actor.node.remote(): actor for actor in actors}
        ready, _ = ray.wait(list(started), num_returns=len(started), timeout=_PLACEMENT_SECONDS)
        if not ready:
            ready, _ = ray.wait(list(started), num_returns=1)
        kept = [started[ref] for ref in ready]
        for actor in actors:
            if actor not in kept:
                ray.kill(actor)
        return kept

    def close(self) -> None:
        ray = import_ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors, self._pool = [], None


class EmbedderActor:
    """One embedder in a Ray worker process: the model loads once per actor (and again when Ray restarts it)."""

    def __init__(self, settings: Settings) -> None:
        import ray

        self.node_address = ray.util.get_node_ip_address()
        self.embedder = Embedder(settings)

    def node(self) -> str:
        return self.node_address

    def embed(self, texts: list[str]) -> tuple[str, np.ndarray]:
        return self.node_address, self.embedder.embed(texts)
