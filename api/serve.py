"""`penny serve --replicas N`: the same FastAPI app (api.app.create_app), lifespan and all, as a Ray Serve
deployment of N replicas behind Ray Serve's HTTP proxy. Plain uvicorn (`penny serve`) stays the default.

The replicas share what lives in the catalogue and the index folder: documents, keys, conversations, the answer
cache and the index versions. Each one's Searcher reads the live version from the catalogue on every search, so a
version an ingestion job publishes is served by every replica on its next request, with no restart. What lives in a
replica's memory stays per replica: the rate limits and the failed-authentication throttle (api/services.py) count
per replica (README, "Serving replicas").

The LLM is a deployment of its own, "llm": PENNY_SERVE_LLM_REPLICAS replicas of PENNY_SERVE_LLM_CPUS cores each,
which load the LLM and generate for every API replica. An API replica plans each answer itself (cache, retrieval,
passage answer, route) and sends only the plans that need the LLM there (api/llm_remote.py), so it holds no LLM,
and passage traffic, however heavy, runs on the API replicas' cores, not the LLM's.

Each response names its replica in `X-Penny-Replica`, for operators tracing a request and for the tests.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request

from api.app import create_app
from api.llm_gate import LlmGate
from api.metrics import Metrics
from ingest.cluster import connected, for_workers, import_ray
from penny import Settings

REPLICA_HEADER = "X-Penny-Replica"
APP_NAME = "penny"
LLM_DEPLOYMENT = "llm"
log = logging.getLogger("penny.api")


class PennyReplica:
    """One replica: builds the app in its own process (`__serve_build_asgi_app__`, Ray Serve's hook for an app made
    at replica start), so each has its own services over the shared catalogue and index, and an LLM gate that
    sends generation to the "llm" deployment (`llm`, the handle Ray Serve puts in place of the bound deployment)."""

    def __init__(self, settings: Settings, llm) -> None:
        self.settings = settings
        self.llm = llm

    def __serve_build_asgi_app__(self) -> FastAPI:
        from ray import serve

        from api.llm_remote import remote_gate

        app = create_app(self.settings, make_gate=remote_gate(self.llm))
        replica = serve.get_replica_context().replica_id.unique_id

        @app.middleware("http")
        async def name_the_replica(request: Request, call_next):
            response = await call_next(request)
            response.headers[REPLICA_HEADER] = replica
            return response

        return app


class LlmReplica:
    """One replica of the "llm" deployment: runs the generation work API replicas send it (api.answering.generate
    and generate_stream on a plan), one job at a time in LlmGate's worker, with the answerer and the LLM loaded in
    this process on first need. Ray Serve sends it at most PENNY_LLM_QUEUE_DEPTH + 1 requests, which is what the
    gate holds, so the refusals are Ray's, before a request reaches a replica."""

    def __init__(self, settings: Settings) -> None:
        # Not niced (PENNY_LLM_NICE is for an LLM sharing the API's process): these cores are the LLM's own, and a
        # niced LLM would lose them to busy API replicas on the same node.
        self.gate = LlmGate(settings.llm_queue_depth, 0, Metrics())

    async def run(self, work, *args):
        return await self.gate.run(work, *args)

    async def stream(self, items):
        from api.llm_remote import ADMITTED

        source = await self.gate.stream(items)
        yield ADMITTED  # the caller starts its response only now: a refusal must come before it
        async for item in source:
            yield item


def penny_application(settings: Settings, replicas: int):
    """The Ray Serve application: `replicas` copies of the app, each holding PENNY_SERVE_REPLICA_CPUS cores, and
    the LLM's deployment, PENNY_SERVE_LLM_REPLICAS copies holding PENNY_SERVE_LLM_CPUS cores each."""
    import_ray()
    from ray import serve

    settings = for_workers(settings)
    llm = serve.deployment(
        LlmReplica,
        name=LLM_DEPLOYMENT,
        num_replicas=settings.serve_llm_replicas,
        ray_actor_options={"num_cpus": settings.serve_llm_cpus},
        max_ongoing_requests=settings.llm_queue_depth + 1,  # one generating, the rest waiting in its worker
        max_queued_requests=1,  # per router, Ray's least; RemoteLlmGate bounds each API replica itself
    )
    api = serve.deployment(
        serve.ingress()(PennyReplica),
        name="api",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": settings.serve_replica_cpus},
    )
    return api.bind(settings, llm.bind(settings))


def start_replicas(settings: Settings, replicas: int, host: str, port: int) -> str:
    """Deploy the app on the connected Ray cluster and return its base URL once every replica is up."""
    import ray
    from ray import serve

    needed = replicas * settings.serve_replica_cpus + settings.serve_llm_replicas * settings.serve_llm_cpus
    cores = ray.cluster_resources().get("CPU", 0)
    if needed > cores:  # Ray waits for the cores (an autoscaler may add nodes): say why nothing answers meanwhile
        log.warning(
            "the replicas need %g cores (%d x PENNY_SERVE_REPLICA_CPUS %g + PENNY_SERVE_LLM_REPLICAS %d x "
            "PENNY_SERVE_LLM_CPUS %g) and the cluster has %g: they start as cores are added, or set fewer",
            needed,
            replicas,
            settings.serve_replica_cpus,
            settings.serve_llm_replicas,
            settings.serve_llm_cpus,
            cores,
        )
    serve.start(http_options={"host": host, "port": port})
    serve.run(penny_application(settings, replicas), name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"


def serve_replicas(settings: Settings, replicas: int, host: str, port: int, address: str) -> None:
    """Run the replicas until interrupted (`penny serve --replicas`), on the Ray cluster at `address`."""
    import time

    with connected(address):
        from ray import serve

        start_replicas(settings, replicas, host, port)
        try:
            while True:  # the replicas run in Ray's processes; this one only keeps the deployment up
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            serve.shutdown()
