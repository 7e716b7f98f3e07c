"""`penny serve --replicas N`: the same FastAPI app (api.app.create_app), lifespan and all, as a Ray Serve
deployment of N replicas behind Ray Serve's HTTP proxy. Plain uvicorn (`penny serve`) stays the default.

The replicas share what lives in the catalogue and the index folder: documents, keys, conversations, the answer
cache and the index versions. Each one's Searcher reads the live version from the catalogue on every search, so a
version an ingestion job publishes is served by every replica on its next request, with no restart. What lives in a
replica's memory stays per replica: the rate limits and the failed-authentication throttle (api/services.py) count
per replica, and each replica runs its own LLM worker queue (README, "Serving replicas").

Each response names its replica in `X-Penny-Replica`, for operators tracing a request and for the tests.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from api.app import create_app
from ingest.cluster import connected, for_workers, import_ray
from penny import Settings

REPLICA_HEADER = "X-Penny-Replica"
APP_NAME = "penny"


class PennyReplica:
    """One replica: builds the app in its own process (`__serve_build_asgi_app__`, Ray Serve's hook for an app made
    at replica start), so each has its own services over the shared catalogue and index."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __serve_build_asgi_app__(self) -> FastAPI:
        from ray import serve

        app = create_app(self.settings)
        replica = serve.get_replica_context().replica_id.unique_id

        @app.middleware("http")
        async def name_the_replica(request: Request, call_next):
            response = await call_next(request)
            response.headers[REPLICA_HEADER] = replica
            return response

        return app


def penny_application(settings: Settings, replicas: int):
    """The Ray Serve application: `replicas` copies of the app, each holding PENNY_SERVE_REPLICA_CPUS cores."""
    import_ray()
    from ray import serve

    deployment = serve.deployment(
        serve.ingress()(PennyReplica),
        name="api",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": settings.serve_replica_cpus},
    )
    return deployment.bind(for_workers(settings))


def start_replicas(settings: Settings, replicas: int, host: str, port: int) -> str:
    """Deploy the app on the connected Ray cluster and return its base URL once every replica is up."""
    from ray import serve

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
