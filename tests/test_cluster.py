"""Penny on a single-node Ray cluster (the optional `cluster` extra): ingestion through Ray equals local ingestion,
a parse task or an embedder actor that dies is retried, two Serve replicas both answer and both serve a version
published after they started, and the LLM runs in its own deployment, which neither API replica duplicates, behind
a bounded queue. Skipped when ray is not installed; one Ray instance for the whole module (~5 s to start,
~800 MiB), two cores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from importlib.util import find_spec
from pathlib import Path

import httpx
import numpy as np
import pytest
from api_support import LEAVE_QUESTION, LLM_QUESTION, build_corpus, free_port, key
from sqlalchemy import select

from answer.llm import resolve_model
from api.serve import APP_NAME, LLM_DEPLOYMENT, REPLICA_HEADER, start_replicas
from ingest.parallel import parse_file
from ingest.pipeline import IngestRequest, ingest
from penny import Settings
from retrieval.catalogue import ChunkRow, Document, EmbeddingRow, open_catalogue
from retrieval.embedder import Embedder, embedding_key
from retrieval.search import Searcher

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "corpus"
needs_ray = pytest.mark.skipif(find_spec("ray") is None, reason="ray is not installed (pip install -e '.[cluster]')")


def test_the_default_commands_never_import_ray():
    """`make demo` runs without the cluster extra: the CLI, the app and a local job must not even import ray."""
    code = (
        "import sys, api.cli, api.app, ingest.pipeline, ingest.job, retrieval.search\n"
        "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def ray_cluster():
    if find_spec("ray") is None:
        pytest.skip("ray is not installed")
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # "local": a cluster of its own, even when `ray start` left its address behind in /tmp/ray
    ray.init(
        address="local", num_cpus=2, object_store_memory=300 * 2**20, include_dashboard=False, logging_level="WARNING"
    )
    yield ray
    ray.shutdown()


def chunks_of(settings: Settings) -> list[tuple[str, int, str, str]]:
    with open_catalogue(settings)() as session:
        rows = session.execute(
            select(Document.path, ChunkRow.ordinal, ChunkRow.text, ChunkRow.text_sha256)
            .join(Document)
            .order_by(Document.path, ChunkRow.ordinal)
        )
        return [tuple(row) for row in rows]


def vectors_of(settings: Settings, hashes: list[str]) -> np.ndarray:
    with open_catalogue(settings)() as session:
        chunks_own = EmbeddingRow.model == embedding_key(settings)  # not the answer sentences'
        found = dict(session.execute(select(EmbeddingRow.text_sha256, EmbeddingRow.vector).where(chunks_own)).all())
    return np.stack([np.frombuffer(found[h], dtype=np.float32) for h in hashes])


def top_chunks(settings: Settings, query: str) -> list[tuple[str, int]]:
    result = Searcher(settings).search(query, 5)
    return [(p.chunk.source_path, p.chunk.ordinal) for p in result.passages]


@needs_ray
@pytest.mark.slow
def test_ingesting_through_ray_equals_local_ingestion(ray_cluster, tmp_path):
    from ingest.cluster import cluster_ingest

    local, cluster = Settings(data_dir=tmp_path / "local"), Settings(data_dir=tmp_path / "cluster")
    request = IngestRequest(paths=[CORPUS])
    expected = ingest(local, request)
    job = cluster_ingest(cluster, request, "local")

    assert job.report.counts() == expected.counts()
    assert job.report.chunks_added > 50 and job.report.failed == expected.failed
    chunks = chunks_of(cluster)
    assert chunks == chunks_of(local)  # same documents, same chunks, same order
    hashes = [row[3] for row in chunks]
    np.testing.assert_allclose(vectors_of(cluster, hashes), vectors_of(local, hashes), atol=1e-4)
    for query in ("How many days of annual leave do employees get?", "expense report deadline"):
        assert top_chunks(cluster, query) == top_chunks(local, query)
    assert sum(job.files_parsed.values()) == expected.added + expected.failed
    assert sum(job.texts_embedded.values()) == expected.chunks_embedded + expected.sentences_embedded


def dies_once(marker: Path, victim: str):
    """A parse that kills its worker process the first time it meets `victim`, as an out-of-memory kill would."""

    def parse(job):
        if job.path.endswith(victim) and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return parse_file(job)

    return parse


@needs_ray
@pytest.mark.slow
def test_a_file_whose_parse_task_dies_is_parsed_again(ray_cluster, tmp_path):
    from ingest.cluster import RayWorkers

    folder = tmp_path / "docs"
    folder.mkdir()
    files = sorted(p for p in CORPUS.rglob("*") if p.suffix in {".md", ".txt", ".html"})[:3]
    for path in files:
        shutil.copy(path, folder / path.name)
    marker = tmp_path / "died"
    settings = Settings(data_dir=tmp_path / "penny")
    workers = RayWorkers(settings, parse=dies_once(marker, files[1].name))
    try:
        report = ingest(settings, IngestRequest(paths=[folder]), workers=workers.workers())
    finally:
        workers.close()
    assert marker.exists()  # the task's worker died once...
    assert (report.added, report.failed) == (3, 0)  # ...and its file was parsed all the same
    assert {row[0] for row in chunks_of(settings)} == {str(folder / p.name) for p in files}


@needs_ray
@pytest.mark.slow
def test_an_embedder_actor_that_dies_is_restarted_and_its_batch_embedded(ray_cluster, tmp_path):
    from ingest.cluster import PoolEmbedder

    settings = Settings(data_dir=tmp_path, embed_threads=1, cluster_embedders=2)
    texts = [f"Employees get {n} days of annual leave." for n in range(70)]
    pool = PoolEmbedder(settings, Counter())
    try:
        first = pool.embed(texts)
        ray_cluster.kill(pool.actors[0], no_restart=False)  # the process dies; Ray starts the actor again
        again = pool.embed(texts)
    finally:
        pool.close()
    np.testing.assert_allclose(again, first, atol=1e-5)
    np.testing.assert_allclose(first, Embedder(settings).embed(texts), atol=1e-4)
    assert sum(pool.embedded_on.values()) == 2 * len(texts)


# two API replicas and the LLM's replica on the two cores of the test's Ray
HALF_CORES = {"serve_replica_cpus": 0.5, "serve_llm_cpus": 0.5}


def by_replica(url: str, path: str, body: dict, headers: dict, wanted: int = 2, tries: int = 40) -> dict[str, dict]:
    """The last JSON each replica returned for the same request, sent in pairs until `wanted` replicas answered."""
    from concurrent.futures import ThreadPoolExecutor

    seen: dict[str, dict] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client, ThreadPoolExecutor(2) as pool:
        for _ in range(tries):
            for response in pool.map(lambda _: client.post(path, json=body), range(2)):
                assert response.status_code == 200, response.text
                seen[response.headers[REPLICA_HEADER]] = response.json()
            if len(seen) >= wanted:
                break
    return seen


@needs_ray
@pytest.mark.slow
def test_two_replicas_both_answer_and_both_serve_a_newly_published_version(ray_cluster, tmp_path):
    from ray import serve

    settings = build_corpus(tmp_path, **HALF_CORES)
    headers = key(settings, "ana", ["everyone"])
    url = start_replicas(settings, 2, "127.0.0.1", free_port())
    try:
        answers = by_replica(url, "/v1/chat", {"message": LEAVE_QUESTION}, headers)
        assert len(answers) == 2  # both replicas answered
        assert all("25 days" in a["answer"]["text"] for a in answers.values())
        before = by_replica(url, "/v1/search", {"query": "parental leave weeks"}, headers)
        version = {r["index_version"] for r in before.values()}.pop()

        new = tmp_path / "docs" / "parental-leave.md"
        new.write_text("# Parental Leave\n\nEvery parent receives 18 weeks of paid parental leave.\n")
        published = ingest(settings, IngestRequest(paths=[new])).index_version  # a job outside the replicas
        assert published > version
        started = time.monotonic()
        deadline = started + 10
        switched: dict[str, dict] = {}
        while len(switched) < 2 and time.monotonic() < deadline:
            for replica, body in by_replica(url, "/v1/search", {"query": "parental leave weeks"}, headers).items():
                if body["index_version"] == published:
                    switched[replica] = body
        assert set(switched) == set(before)  # both replicas serve the new version, neither restarted
        assert all(b["passages"][0]["source_path"] == str(new.resolve()) for b in switched.values())
    finally:
        serve.shutdown()


def replica_processes(deployment: str) -> list[int]:
    """Process ids of the replicas of one of Penny's deployments on this machine (Ray titles each process
    `ray::ServeReplica:APP:DEPLOYMENT`)."""
    title = f"ServeReplica:{APP_NAME}:{deployment}".encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if title in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended while we looked
            continue
    return found


def maps(pid: int, path: Path) -> bool:
    """Whether process `pid` has the file mapped into memory, as llama.cpp maps a model it loaded."""
    return str(path.resolve()) in Path(f"/proc/{pid}/maps").read_text()


def wait_for(condition, seconds: float) -> None:
    """Poll `condition` until it holds; fail the test if it does not within `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still false after {seconds} s: {condition}"
        time.sleep(0.1)


def chat(url: str, headers: dict, stream: bool = False) -> httpx.Response:
    body = {"message": LLM_QUESTION, "use_cache": False}
    return httpx.post(f"{url}/v1/chat?stream={str(stream).lower()}", json=body, headers=headers, timeout=120)


@needs_ray
@pytest.mark.slow
def test_the_llm_answers_in_its_own_deployment_behind_a_bounded_queue(ray_cluster, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from ray import serve

    from api.llm_remote import RemoteLlmGate
    from api.metrics import Metrics

    settings = build_corpus(tmp_path, llm_queue_depth=0, llm_max_tokens=24, **HALF_CORES)
    headers = key(settings, "ana", ["everyone"])
    url = start_replicas(settings, 2, "127.0.0.1", free_port())
    try:
        answered = chat(url, headers)
        assert answered.status_code == 200, answered.text
        answer = answered.json()["answer"]
        assert answer["path"] == "llm" and answer["cost"]["llm_prompt_tokens"] > 0
        streamed = chat(url, headers, stream=True)
        events = [block for block in streamed.text.split("\n\n") if block]
        assert events[-1].startswith("event: answer") and '"path":"llm"' in events[-1], events[-1]
        assert any(block.startswith("event: delta") for block in events)

        model = resolve_model(settings)
        api, llm = replica_processes("api"), replica_processes(LLM_DEPLOYMENT)
        assert len(api) == 2 and len(llm) == 1
        assert maps(llm[0], model)  # the LLM's replica loaded the model...
        assert not any(maps(pid, model) for pid in api)  # ...and neither API replica did

        # The LLM's one place (queue depth 0) held from here, through a gate like the replicas', as a long
        # generation would hold it, until the test lets go: a fixed hold could end before slow requests
        # reach the LLM, and then they would be served instead of refused
        marker, release = tmp_path / "generating", tmp_path / "release"
        hold = f"touch {marker}; i=0; while [ ! -e {release} ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i+1)); done"
        gate = RemoteLlmGate(serve.get_deployment_handle(LLM_DEPLOYMENT, APP_NAME), 0, Metrics())
        held = gate.submit(subprocess.run, ["sh", "-c", hold])
        wait_for(marker.exists, 30)
        with ThreadPoolExecutor(4) as pool:
            pending = [pool.submit(chat, url, headers) for _ in range(4)]
            try:  # the refusals come back at once while the place is held; the others wait for it
                wait_for(lambda: sum(f.done() for f in pending) >= 2, 120)
            finally:
                release.touch()
            responses = [f.result() for f in pending]
        assert held.result(60).returncode == 0 and gate.pending == 0
        gate.close()
        refused = [r for r in responses if r.status_code == 503]
        # each API replica has at most one request (queue depth 0 + 1) in the LLM deployment; the rest are refused
        assert 2 <= len(refused) <= 3, [r.status_code for r in responses]
        for response in refused:
            assert response.json()["error"]["code"] == "llm_busy"
            assert int(response.headers["retry-after"]) >= 1
        waited = [r for r in responses if r.status_code != 503]
        assert all(r.status_code == 200 and r.json()["answer"]["path"] == "llm" for r in waited)
    finally:
        serve.shutdown()
