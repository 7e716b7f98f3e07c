"""API benchmark: passage-path latency under concurrency while the local LLM is kept busy, on a real server.

    python -m eval.bench_api [--levels 1,8,32] [--seconds 10] [--every 2] [--llm-model qwen2.5-coder-1.5b]
                             [--data-dir DIR]

Ingests data/corpus (a no-op when unchanged), sorts data/sample-questions.jsonl into passage-path and LLM-path
questions with the router itself (LLM forbidden), starts `penny serve` on loopback in its own process, then for
each level N runs N closed-loop clients asking passage-path questions (cache off) for a fixed time: first with the
LLM idle, then while LLM clients (one more than the queue holds) keep it busy. Prints requests/s and p50/p95/p99
of passage answers side by side, the cache path at the highest level, the highest level again with each client
pausing between questions as a person does (`--every`), and what the LLM queue did.

Clients that ask back to back measure capacity: at N such clients the mean latency is N / (answers per second),
so a p95 under 100 ms at 32 of them needs 320 answers a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from eval.metrics import percentile

REPO = Path(__file__).resolve().parents[1]
PENNY = str(Path(sys.executable).with_name("penny"))


@dataclass
class Phase:
    name: str
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[int | str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def row(self) -> str:
        ms = [x * 1000 for x in self.latencies]
        if not ms:
            return f"| {self.name} | {self.clients} | 0 | - | - | - | - | {self.errors} |"
        return (
            f"| {self.name} | {self.clients} | {len(ms)} | {len(ms) / self.seconds:.1f} | {percentile(ms, 50):.0f} | "
            f"{percentile(ms, 95):.0f} | {percentile(ms, 99):.0f} | {self.errors or ''} |"
        )


@dataclass
class LlmLoad:
    answered: list[float] = field(default_factory=list)
    refused: int = 0
    retry_after: list[int] = field(default_factory=list)
    queue_seen: list[float] = field(default_factory=list)


def sort_questions(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Passage-path and LLM-path questions, as the router routes them (run in a child so this process stays light)."""
    script = """
import json, sys
from answer import Answerer
from penny import Settings
answerer, passages, llm = Answerer(Settings()), [], []
for line in open(sys.argv[1]):
    question = json.loads(line)["question"]
    plan = answerer.plan(question, use_cache=False)
    if plan.needs_llm:
        llm.append(question)
    elif plan.path == "passages":
        passages.append(question)
print(json.dumps([passages, llm]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "data/sample-questions.jsonl")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    passages, llm = json.loads(out.stdout.strip().splitlines()[-1])
    return passages, llm


async def closed_loop(
    client: httpx.AsyncClient, phase: Phase, questions: list[str], seconds: float, cache: bool, every: float = 0.0
):
    """`phase.clients` clients asking back to back, or, with `every` > 0, each asking once every `every` seconds
    (a person reading the answer before the next question), their first questions spread over that interval."""
    deadline = time.perf_counter() + seconds

    async def one_client(offset: int) -> None:
        turn = offset
        if every:
            await asyncio.sleep(every * (offset / 7) / phase.clients)
        while time.perf_counter() < deadline:
            question = questions[turn % len(questions)]
            turn += 1
            started = time.perf_counter()
            try:
                response = await client.post("/v1/chat", json={"message": question, "use_cache": cache})
            except httpx.TransportError:
                phase.errors["transport"] = phase.errors.get("transport", 0) + 1
                continue
            if response.status_code == 200:
                phase.latencies.append(time.perf_counter() - started)
            else:
                phase.errors[response.status_code] = phase.errors.get(response.status_code, 0) + 1
            if every:
                await asyncio.sleep(max(0.0, started + every - time.perf_counter()))

    started = time.perf_counter()
    await asyncio.gather(*(one_client(i * 7) for i in range(phase.clients)))
    phase.seconds = time.perf_counter() - started


async def keep_llm_busy(client: httpx.AsyncClient, questions: list[str], load: LlmLoad, stop: asyncio.Event, n: int):
    async def one(offset: int) -> None:
        turn = offset
        while not stop.is_set():
            started = time.perf_counter()
            body = {"message": questions[turn % len(questions)], "use_cache": False}
            turn += 1
            try:
                response = await client.post("/v1/chat", json=body, timeout=900)
            except httpx.TransportError:
                continue
            if response.status_code == 200:
                load.answered.append(time.perf_counter() - started)
            elif response.status_code == 503:
                load.refused += 1
                load.retry_after.append(int(response.headers.get("retry-after", "0")))
                await asyncio.sleep(1.0)  # keep the pressure on rather than honour a long Retry-After

    await asyncio.gather(*(one(i) for i in range(n)))


async def watch_queue(client: httpx.AsyncClient, load: LlmLoad, stop: asyncio.Event) -> None:
    while not stop.is_set():
        text = (await client.get("/metrics")).text
        found = re.search(r"^penny_llm_queue (\S+)$", text, re.MULTILINE)
        if found:
            load.queue_seen.append(float(found.group(1)))
        await asyncio.sleep(0.5)


async def wait_for_queue(client: httpx.AsyncClient, at_least: float, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (await client.get("/metrics")).text
        found = re.search(r"^penny_llm_queue (\S+)$", text, re.MULTILINE)
        if found and float(found.group(1)) >= at_least:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the LLM queue never filled")


async def run(args, url: str, token: str, passages: list[str], llm: list[str], depth: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    # idle connections expire before uvicorn's 5 s keep-alive does, so a request never races a server-side close
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as client:
        for question in passages[:3]:  # warm the server's caches and the thread pool
            await client.post("/v1/chat", json={"message": question, "use_cache": False})
        started = time.perf_counter()
        first = await client.post("/v1/chat", json={"message": llm[0], "use_cache": False}, timeout=900)
        print(f"first LLM answer (loads the model): {time.perf_counter() - started:.1f} s, HTTP {first.status_code}")

        print("\n| phase | clients | answers | req/s | p50 ms | p95 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|---|")
        for clients in args.levels:
            phase = Phase("passages, LLM idle", clients)
            await closed_loop(client, phase, passages, args.seconds, cache=False)
            print(phase.row(), flush=True)

        load, stop = LlmLoad(), asyncio.Event()
        llm_clients = depth + 2  # one more than the gate holds (1 running + depth waiting): some are refused
        busy = asyncio.gather(keep_llm_busy(client, llm, load, stop, llm_clients), watch_queue(client, load, stop))
        await wait_for_queue(client, 1)
        llm_started = time.perf_counter()
        for clients in args.levels:
            phase = Phase("passages, LLM busy", clients)
            await closed_loop(client, phase, passages, args.seconds, cache=False)
            print(phase.row(), flush=True)
        phase = Phase("cache hits, LLM busy", max(args.levels))
        await closed_loop(client, phase, passages, args.seconds, cache=True)
        print(phase.row(), flush=True)
        if args.every:
            phase = Phase(f"passages, LLM busy, each client asks every {args.every:g} s", max(args.levels))
            await closed_loop(client, phase, passages, max(args.seconds, 4 * args.every), cache=False, every=args.every)
            print(phase.row(), flush=True)
        llm_seconds = time.perf_counter() - llm_started
        stop.set()
        busy.cancel()  # LLM answers in flight are not waited for: their clients are gone
        await asyncio.gather(busy, return_exceptions=True)

    answered = sorted(load.answered)
    print(
        f"\nLLM load: {llm_clients} clients against queue depth {depth} over {llm_seconds:.0f} s: "
        f"{len(answered)} LLM answers (p50 {percentile(answered, 50) if answered else float('nan'):.1f} s), "
        f"{load.refused} refused with 503 (Retry-After median "
        f"{percentile(load.retry_after, 50) if load.retry_after else 0:.0f} s), "
        f"queue gauge max {max(load.queue_seen, default=0):.0f}, mean {statistics.fmean(load.queue_seen or [0]):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,8,32", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", default=10.0, type=float)
    parser.add_argument(
        "--every", default=2.0, type=float, help="also the top level, each client asking every EVERY s (0: skip)"
    )
    parser.add_argument("--llm-model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--data-dir", default="/tmp/penny-bench-api", type=Path)
    parser.add_argument("--port", default=8765, type=int)
    args = parser.parse_args()

    depth = 4
    env = {
        **os.environ,
        "PENNY_DATA_DIR": str(args.data_dir),
        "PENNY_LLM_MODEL": args.llm_model,
        "PENNY_RATE_LIMIT_PER_MINUTE": "1000000000",
        "PENNY_LLM_QUEUE_DEPTH": str(depth),
        "PENNY_LLM_MAX_TOKENS": "128",
    }
    subprocess.run(
        [PENNY, "ingest", str(REPO / "data/corpus"), "--json"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    passages, llm = sort_questions(env)
    print(f"{len(passages)} passage-path and {len(llm)} LLM-path questions in data/sample-questions.jsonl")
    created = subprocess.run(
        [PENNY, "keys", "create", "--user", "bench", "--json"], env=env, check=True, capture_output=True, text=True
    )
    token = json.loads(created.stdout)["key"]
    server = subprocess.Popen([PENNY, "serve", "--port", str(args.port)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not become ready")
            time.sleep(0.3)
        print(
            f"server {url}: LLM {args.llm_model}, queue depth {depth}, {args.seconds:.0f} s per phase, "
            f"{os.cpu_count()} cores"
        )
        asyncio.run(run(args, url, token, passages, llm, depth))
    finally:
        server.terminate()  # uvicorn waits for requests in flight, LLM ones included: give it a while, then stop it
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
