"""The LLM gate of an API replica under `penny serve --replicas`: api.llm_gate.LlmGate's surface, but the work runs
in the LLM's own Ray Serve deployment ("llm", api/serve.py), so API replicas hold no LLM and passage traffic runs
on their cores, not the LLM's.

The work and its arguments travel to the LLM replica by pickle: module-level functions (api.answering.generate)
with the settings and the plan, never something bound to this process. The queue is bounded twice. Each API
replica sends at most PENNY_LLM_QUEUE_DEPTH + 1 requests to the LLM at once and refuses the next itself: Ray
Serve's `max_queued_requests` alone did not bound it (its count is per router, a handle's options make another
router, and under load four requests waited behind a limit of one). An LLM replica takes PENNY_LLM_QUEUE_DEPTH + 1
requests (one generating, the rest waiting in its worker), and Ray's BackPressureError refuses what its routers
cannot place. Either refusal becomes the API's 503 `llm_busy` with a Retry-After, as the local gate's does.

Ray is imported here: only api/serve.py imports this module, inside a replica.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from api.errors import ApiError
from api.metrics import Metrics
from api.services import GateFactory
from penny import Settings

T = TypeVar("T")
# The first item of every stream from the LLM deployment: the request has its place there (a refusal comes instead).
ADMITTED = None


class RemoteLlmGate:
    def __init__(self, llm: DeploymentHandle, queue_depth: int, metrics: Metrics) -> None:
        self._llm = llm
        self._streaming = llm.options(stream=True)
        self.queue_depth = queue_depth
        self.capacity = queue_depth + 1  # this replica's requests in the LLM deployment at once
        self.metrics = metrics
        self._lock = threading.Lock()
        self._pending = 0
        self._recent_seconds = 10.0  # moving average of this replica's LLM calls, waiting included, for Retry-After
        self._waiters = ThreadPoolExecutor(thread_name_prefix="penny-llm-remote")  # for `submit` only

    @property
    def pending(self) -> int:
        """This replica's requests waiting for or running in the LLM deployment."""
        return self._pending

    def submit(self, work: Callable[..., T], *args: Any) -> Future[T]:
        """Send `work(*args)` to the LLM deployment from synchronous code. Raises the 503 ApiError when this replica
        has its share of the deployment already; the future fails with it when the deployment's queue is full."""
        started = self._enter()
        try:
            response = self._llm.run.remote(work, *args)
        except BaseException:
            self._leave(started)
            raise

        def wait() -> T:
            try:
                with self._translated():
                    return response.result()
            finally:
                self._leave(started)

        return self._waiters.submit(wait)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        with self._counted(), self._translated():
            return await self._llm.run.remote(work, *args)

    async def stream(self, items: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """The items of `items()`, iterated in the LLM deployment. Returns once the deployment took the request
        (raising 503 when its queue is full), so a refusal happens before any response is sent."""
        started = self._enter()
        generator = self._streaming.stream.remote(items)
        try:
            with self._translated():
                first = await generator.__anext__()
            assert first is ADMITTED, f"the LLM deployment's stream began with {first!r}"
        except BaseException:
            generator.cancel()
            self._leave(started)
            raise

        async def consume() -> AsyncIterator[T]:
            try:
                with self._translated():
                    async for item in generator:
                        yield item
            finally:
                generator.cancel()  # the client went away, or all came: either way the deployment is done with it
                self._leave(started)

        return consume()

    def close(self) -> None:
        self._waiters.shutdown(wait=False, cancel_futures=True)

    def _enter(self) -> float:
        """Count a request in, or refuse it when this replica has `capacity` in the deployment already."""
        with self._lock:
            if self._pending >= self.capacity:
                raise self._busy(f"this API replica has {self._pending} requests there already")
            self._pending += 1
            self.metrics.llm_queue.set(self._pending)
        return time.monotonic()

    def _leave(self, started: float) -> None:
        with self._lock:
            self._pending -= 1
            self._recent_seconds = 0.7 * self._recent_seconds + 0.3 * (time.monotonic() - started)
            self.metrics.llm_queue.set(self._pending)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        started = self._enter()
        try:
            yield
        finally:
            self._leave(started)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Ray's refusal as the API's 503; an error of the work itself as it was raised in the LLM replica."""
        try:
            yield
        except BackPressureError as exc:
            raise self._busy("its deployment's queue is full") from exc
        except RayTaskError as exc:
            if exc.cause is None:
                raise
            raise exc.cause from None

    def _busy(self, why: str) -> ApiError:
        """The refusal a client gets, counted as one."""
        self.metrics.llm_rejected.inc()
        retry = max(1, round(self._recent_seconds))
        return ApiError(
            503,
            "llm_busy",
            f"the local language model is busy ({why}; PENNY_LLM_QUEUE_DEPTH is {self.queue_depth}); "
            f"retry in about {retry} s",
            {"Retry-After": str(retry)},
        )


def remote_gate(llm: DeploymentHandle) -> GateFactory:
    """What builds an API replica's gate in front of the LLM deployment `llm` (Services' `make_gate`)."""

    def make(settings: Settings, metrics: Metrics) -> RemoteLlmGate:
        return RemoteLlmGate(llm, settings.llm_queue_depth, metrics)

    return make
