"""What the endpoints share, built once per Settings: catalogue, searcher, answerer, LLM gate, limits, metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.jobs import IngestRunner
from api.llm_gate import Gate, LlmGate
from api.metrics import Metrics
from penny import Settings
from retrieval.catalogue import open_catalogue
from retrieval.search import Searcher, get_searcher


class RateLimit:
    """A moving window of `per_minute` events per name (a key's id, a client's address)."""

    def __init__(self, per_minute: int) -> None:
        self.limit = parse_limit(f"{per_minute}/minute")
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def allow(self, name: int | str) -> tuple[bool, int]:
        """Count one event for `name` if the window has room: whether it had, and the seconds until it has."""
        if self.limiter.hit(self.limit, str(name)):
            return True, 0
        return False, self.retry_after(name)

    def exhausted(self, name: int | str) -> int:
        """Seconds until `name` may act again, 0 when it may now; counts nothing."""
        return 0 if self.limiter.test(self.limit, str(name)) else self.retry_after(name)

    def retry_after(self, name: int | str) -> int:
        reset = self.limiter.get_window_stats(self.limit, str(name)).reset_time
        return max(1, round(reset - time.time()))


def local_gate(settings: Settings, metrics: Metrics) -> LlmGate:
    """The LLM in this process, behind its own niced worker (plain `penny serve`)."""
    return LlmGate(settings.llm_queue_depth, settings.llm_nice, metrics)


# What builds a Services' LLM gate: the local one, or (`penny serve --replicas`) api.llm_remote's, which sends the
# work to the LLM's own deployment.
GateFactory = Callable[[Settings, Metrics], Gate]


class Services:
    def __init__(self, settings: Settings, make_gate: GateFactory = local_gate) -> None:
        self.settings = settings
        self.sessions = open_catalogue(settings)
        self.metrics = Metrics()
        self.gate = make_gate(settings, self.metrics)
        self.rate_limit = RateLimit(settings.rate_limit_per_minute)
        self.auth_failures = RateLimit(settings.auth_failures_per_minute)
        self.ingest = IngestRunner(settings, self.metrics)
        self.searcher: Searcher = get_searcher(settings)

    @property
    def answerer(self):
        from answer import get_answerer  # imported on first use: search and admin work without it

        return get_answerer(self.settings)

    def close(self) -> None:
        self.gate.close()
        self.ingest.close()


# Keyed by the settings' values, not the object: an id can be reused once an object dies, and keeping one entry
# per object kept every Settings ever passed alive.
_built: dict[str, Services] = {}
_built_lock = threading.Lock()


def services_for(settings: Settings, make_gate: GateFactory = local_gate) -> Services:
    """The one Services for these settings in this process (equal settings share it); `make_gate` is used only
    when they are built here."""
    key = settings.model_dump_json()
    with _built_lock:
        services = _built.get(key)
        if services is None:
            services = _built[key] = Services(settings, make_gate)
        return services


def release(settings: Settings) -> None:
    """Close the Services of these settings (an app shutting down); the next services_for builds fresh ones."""
    with _built_lock:
        services = _built.pop(settings.model_dump_json(), None)
    if services is not None:
        services.close()
