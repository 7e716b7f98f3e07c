"""Cluster benchmark: Penny on Ray against Penny on one process, in the same run.

    python -m eval.bench_cluster [FOLDER] [--limit 200] [--cluster local|auto|HOST:PORT] [--seconds 30]

1. Ingestion: the first `--limit` files of FOLDER (default ../shared/data/ocp-4.15/docs), ingested by plain
   `penny ingest` and by `penny ingest --cluster ...` into two empty data directories: wall time, chunks/s, the
   job's stage times, how the files and chunks split across nodes, and whether both made the same chunks.
2. Serving: plain uvicorn, then Ray Serve with 1 and 2 replicas, each loaded for `--seconds` by `--clients`
   concurrent clients asking questions (section headings of the ingested chunks) with the answer cache off and the
   LLM off (PENNY_ROUTER_MIN_GAIN=1: passage answers, what a replica serves most): answers/s, p50 and p95, and how
   the answers split across replicas. The clients spread over the Serve proxies of `--proxies` (one per node).
3. New version: with 2 replicas up, one new file ingested; seconds from the job's commit until every replica
   answers from the new version.

Every Penny here runs as a `penny` subprocess, as an operator would run it. Figures from this script are meant for a
quiet machine; `--limit 20 --seconds 5` checks that it works.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from eval.bench_ingest import DEFAULT_FOLDER, sample_folder
from eval.metrics import percentile

REPO = Path(__file__).resolve().parents[1]
PENNY = str(Path(sys.executable).with_name("penny"))
REPLICA_HEADER = "X-Penny-Replica"  # api/serve.py names each response's replica


def penny(data_dir: Path, *args: str, extra_env: dict | None = None) -> dict:
    """Run `penny ARGS --json` against `data_dir` and return its JSON output."""
    env = {**os.environ, "PENNY_DATA_DIR": str(data_dir), **(extra_env or {})}
    done = subprocess.run(
        [PENNY, *args, "--json"], env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"penny {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


# ---------------------------------------------------------------- ingestion


def timed_ingest(folder: Path, data_dir: Path, cluster: str | None) -> tuple[dict, float]:
    args = ["ingest", str(folder), *(["--cluster", cluster] if cluster else [])]
    started = time.perf_counter()
    report = penny(data_dir, *args)
    return report, time.perf_counter() - started


def chunk_texts(data_dir: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(data_dir / "catalogue.db") as db:
        query = "SELECT d.path, c.ordinal, c.text FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY 1, 2"
        return db.execute(query).fetchall()


def ingestion(folder: Path, work: Path, cluster: str) -> Path:
    """Both ingestions, printed side by side; returns the local data directory, for serving."""
    local, on_ray = work / "local", work / "ray"
    rows = [("local", *timed_ingest(folder, local, None)), (f"ray ({cluster})", *timed_ingest(folder, on_ray, cluster))]
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    print(f"\n## Ingestion: {files} files from {folder}\n")
    print("| run | wall s | chunks | chunks/s | scan+parse s | embed s | publish s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, report, wall in rows:
        stages = report["seconds"]
        print(
            f"| {name} | {wall:.1f} | {report['chunks_added']} | {report['chunks_added'] / wall:.1f} | "
            f"{stages.get('scan', 0):.1f} | {stages.get('embed', 0):.1f} | {stages.get('publish', 0):.1f} |"
        )
    split = rows[1][1]["cluster"]
    for what, by_node in split.items():
        print(f"\n{what.replace('_', ' ')} per node: " + ", ".join(f"{n} {c}" for n, c in sorted(by_node.items())))
    same = chunk_texts(local) == chunk_texts(on_ray)
    print(f"\nsame chunks (path, ordinal, text) in both: {same}")
    print_disk_per_million(local, rows[0][1]["chunks_added"])
    return local


def print_disk_per_million(data_dir: Path, chunks: int) -> None:
    """The data directory's size scaled to a million chunks (linear: vectors, BM25 postings and rows all are)."""
    index = sum(p.stat().st_size for p in (data_dir / "index").rglob("*") if p.is_file())
    catalogue = sum(p.stat().st_size for p in data_dir.glob("catalogue.db*"))
    scale = 1e6 / max(chunks, 1) / 2**30
    print(f"on disk per million chunks: index {index * scale:.2f} GiB, catalogue {catalogue * scale:.2f} GiB")


# ---------------------------------------------------------------- serving


@contextmanager
def served(data_dir: Path, replicas: int | None, hosts: list[str], port: int, cluster: str):
    """`penny serve` (replicas None: plain uvicorn) until the body ends; yields (start-up seconds, its pid, the base
    URLs that answer). On several nodes every node's Serve proxy listens on all interfaces, and the URLs are those
    of `hosts` whose proxy answers (Ray runs one only on a node holding a replica, and on the head)."""
    listen = "0.0.0.0" if len(hosts) > 1 else hosts[0]
    args = [PENNY, "serve", "--host", listen, "--port", str(port)]
    if replicas:
        args += ["--replicas", str(replicas), "--cluster", cluster]
    # 2 API replicas and the LLM deployment reserve 3 CPUs at 1 each: on 2 cores the second replica never started
    # and every answer came from the first. The LLM is off here, so half a CPU each fits them all.
    halves = {"PENNY_SERVE_REPLICA_CPUS": "0.5", "PENNY_SERVE_LLM_CPUS": "0.5"}
    env = {**halves, **os.environ, "PENNY_DATA_DIR": str(data_dir), "PENNY_ROUTER_MIN_GAIN": "1"}
    started = time.perf_counter()
    log = tempfile.TemporaryFile()  # not a pipe: Ray's logs would fill it and block the server
    process = subprocess.Popen(args, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    urls = [f"http://{host}:{port}" for host in hosts]
    try:
        wait_ready(urls[0], process, log)
        start = time.perf_counter() - started
        yield start, process.pid, [urls[0], *(url for url in urls[1:] if replicas and answers(url))]
    finally:
        process.send_signal(signal.SIGINT)  # Serve shuts its replicas down, then Ray
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        for url in urls:
            wait_gone(url)


def wait_gone(url: str, timeout: float = 60) -> None:
    """Until nothing answers at `url`: Ray Serve's proxy can outlive `penny serve` for a while, and the next stage's
    readiness check would find it (it once "started" 2 replicas in 0.1 s, all answers from one old replica)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/readyz", timeout=1)
        except httpx.HTTPError:
            return
        time.sleep(0.5)
    sys.exit(f"something still answers at {url} {timeout:.0f} s after its penny serve ended")


def is_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def answers(url: str, timeout: float = 20) -> bool:
    """Whether `url` becomes ready within `timeout`: a node's proxy starts a little after the first one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(url):
            return True
        time.sleep(0.5)
    return False


def wait_ready(url: str, process: subprocess.Popen, log, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            sys.exit(f"penny serve exited ({process.returncode}):\n{log.read().decode()[-3000:]}")
        if is_ready(url):
            return
        time.sleep(0.5)
    sys.exit(f"penny serve at {url} was not ready in {timeout:.0f} s")


def serving_rss_mb(pid: int, on_ray: bool) -> str:
    """Resident memory of the processes that answer: the uvicorn process, or each API replica's worker (Ray names
    them ServeReplica:APP:DEPLOYMENT; the LLM deployment's replica is left out)."""
    import psutil

    if not on_ray:
        return f"{psutil.Process(pid).memory_info().rss / 2**20:.0f}"
    replicas = [
        p for p in psutil.process_iter(["cmdline"]) if "ServeReplica:penny:api" in " ".join(p.info["cmdline"] or [])
    ]
    return ", ".join(f"{p.memory_info().rss / 2**20:.0f}" for p in replicas)


def questions_from(data_dir: Path, count: int = 200) -> list[str]:
    with sqlite3.connect(data_dir / "catalogue.db") as db:
        sections = [row[0] for row in db.execute("SELECT DISTINCT section FROM chunks WHERE section != ''")]
    random.Random(0).shuffle(sections)
    return [f"How do I {s.split(' > ')[-1].lower()}?" for s in sections[:count]] or ["How do I install it?"]


def load(urls: list[str], key: str, questions: list[str], clients: int, seconds: float) -> dict:
    """`clients` threads asking in turn for `seconds`, client i through `urls[i % len(urls)]` (as a load balancer in
    front of every node's proxy would spread them): answers/s, latency percentiles, answers per replica."""
    latencies: list[float] = []
    replicas: Counter[str] = Counter()
    failures: Counter[int] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        url = urls[number % len(urls)]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
            turn = number
            while time.monotonic() < stop:
                body = {"message": questions[turn % len(questions)], "use_cache": False}
                started = time.perf_counter()
                response = http.post("/v1/chat", json=body)
                with lock:
                    if response.status_code == 200:
                        latencies.append(time.perf_counter() - started)
                        replicas[response.headers.get(REPLICA_HEADER, "uvicorn")] += 1
                    else:
                        failures[response.status_code] += 1
                turn += clients

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    ms = [1000 * x for x in latencies]
    return {
        "answers_per_s": len(latencies) / wall,
        "p50_ms": percentile(ms, 50) if ms else float("nan"),
        "p95_ms": percentile(ms, 95) if ms else float("nan"),
        "replicas": dict(replicas),
        "failures": dict(failures),
    }


def serving(data_dir: Path, cluster: str, clients: int, seconds: float, hosts: list[str], port: int) -> None:
    key = penny(data_dir, "keys", "create", "--user", "bench", "--group", "everyone")["key"]
    questions = questions_from(data_dir)
    print(f"\n## Serving: {clients} clients for {seconds:.0f} s each, passage answers, answer cache off\n")
    print(
        "| server | start s | proxies | answers/s | p50 ms | p95 ms | answers per replica | RSS MB per replica "
        "| failures |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for replicas in (None, 1, 2):
        with served(data_dir, replicas, hosts, port, cluster) as (start, pid, urls):
            result = load(urls, key, questions, clients, seconds)
            rss = serving_rss_mb(pid, bool(replicas))
        name = f"Ray Serve, {replicas} replica{'s' * (replicas > 1)}" if replicas else "uvicorn"
        split = ", ".join(str(n) for n in sorted(result["replicas"].values(), reverse=True))
        print(
            f"| {name} | {start:.1f} | {len(urls)} | {result['answers_per_s']:.2f} | {result['p50_ms']:.0f} | "
            f"{result['p95_ms']:.0f} | {split} | {rss} | {result['failures'] or ''} |"
        )


# ---------------------------------------------------------------- a new version


def versions_by_replica(urls: list[str], key: str, tries: int = 8) -> dict[str, int]:
    """The index version each replica searched last, from a few requests sent two at a time through each proxy."""
    seen: dict[str, int] = {}
    for url in urls:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            with ThreadPoolExecutor(2) as pool:
                for _ in range(tries):
                    ask = lambda _: http.post("/v1/search", json={"query": "quarterly penguin census"})  # noqa: E731
                    for response in pool.map(ask, range(2)):
                        seen[response.headers[REPLICA_HEADER]] = response.json()["index_version"]
    return seen


def new_version(data_dir: Path, work: Path, cluster: str, hosts: list[str], port: int) -> None:
    key = penny(data_dir, "keys", "create", "--user", "bench-version", "--group", "everyone")["key"]
    new = work / "new" / "penguins.md"
    new.parent.mkdir(parents=True, exist_ok=True)
    new.write_text("# Penguin census\n\nThe quarterly penguin census counts 4,200 penguins.\n")
    with served(data_dir, 2, hosts, port, cluster) as (_, _, urls):
        before: dict[str, int] = {}
        for _ in range(25):  # a quiet proxy may send every request of a round to one replica
            before |= versions_by_replica(urls, key)
            if len(before) == 2:
                break
        published = penny(data_dir, "ingest", str(new))["index_version"]
        committed = time.perf_counter()
        switched: dict[str, float] = {}
        while len(switched) < len(before) and time.perf_counter() - committed < 60:
            for replica, version in versions_by_replica(urls, key, tries=2).items():
                if version == published:
                    switched.setdefault(replica, time.perf_counter() - committed)
    print(f"\n## A new version (v{published}) with 2 replicas up\n")
    if len(before) < 2:
        print(f"- only {len(before)} of the 2 replicas answered in 25 rounds of requests: the other was not timed")
    for replica in sorted(before):
        took = switched.get(replica)
        print(f"- replica {replica}: " + (f"served it {took:.2f} s after the commit" if took else "never switched"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--limit", type=int, default=200, help="files to ingest (the first N, sorted)")
    parser.add_argument("--cluster", default="local", help="Ray: local (one per command), auto, HOST:PORT")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--proxies",
        default="127.0.0.1",
        help="comma-separated addresses of the nodes whose Serve proxies the clients spread over (eval/two_nodes.sh "
        "passes both nodes'); with more than one, penny serve listens on every interface",
    )
    args = parser.parse_args()
    if not args.folder.exists():
        sys.exit(f"{args.folder} does not exist (the shared evaluation data is not here)")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("PENNY_RATE_LIMIT_PER_MINUTE", "1000000")  # the load generator is one key
    work = Path(tempfile.mkdtemp(prefix="penny-bench-cluster-"))
    try:
        folder = sample_folder(args.folder, args.limit, work / "docs")
        data_dir = ingestion(folder, work, args.cluster)
        hosts = args.proxies.split(",")
        serving(data_dir, args.cluster, args.clients, args.seconds, hosts, args.port)
        new_version(data_dir, work, args.cluster, hosts, args.port)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
