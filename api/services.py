"""What the endpoints share, built once per Settings: catalogue, searcher, answerer, LLM gate, limits, metrics."""

from __future__ import annotations

import threading
import time

from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.jobs import IngestRunner
from api.llm_gate import LlmGate
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


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = open_catalogue(settings)
        self.metrics = Metrics()
        self.gate = LlmGate(settings.llm_queue_depth, settings.llm_nice, self.metrics)
        self.rate_limit = RateLimit(settings.rate_limit_per_minute)
        self.auth_failures = RateLimit(settings.auth_failures_per_minute)
        self.ingest = IngestRunner(settings, self.metrics)
        self.searcher: Searcher = get_searcher(settings)
        self._answerer = None
        self._lock = threading.Lock()

    @property
    def answerer(self):
        if self._answerer is None:
            from answer import Answerer  # imported on first use: search and admin work without it

            with self._lock:
                if self._answerer is None:
                    self._answerer = Answerer(self.settings)
        return self._answerer

    def close(self) -> None:
        self.gate.close()
        self.ingest.close()


# Keyed by the settings' values, not the object: an id can be reused once an object dies, and keeping one entry
# per object kept every Settings ever passed alive.
_built: dict[str, Services] = {}
_built_lock = threading.Lock()


def services_for(settings: Settings) -> Services:
    """The one Services for these settings in this process (equal settings share it)."""
    key = settings.model_dump_json()
    with _built_lock:
        services = _built.get(key)
        if services is None:
            services = _built[key] = Services(settings)
        return services


def release(settings: Settings) -> None:
    """Close the Services of these settings (an app shutting down); the next services_for builds fresh ones."""
    with _built_lock:
        services = _built.pop(settings.model_dump_json(), None)
    if services is not None:
        services.close()
