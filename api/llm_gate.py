"""The one local LLM as a shared resource: a single worker thread, a bounded queue in front of it.

Work that needs the LLM runs in the worker, one at a time, at a lower CPU priority (`PENNY_LLM_NICE`), so that
passage and cache answers, which run in the ordinary thread pool, never wait behind it. When `llm_queue_depth`
requests are already waiting, a new one is refused at once with 503 and a Retry-After estimated from how long
recent LLM answers took: a client learns immediately instead of holding a connection for minutes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from api.errors import ApiError
from api.metrics import Metrics

log = logging.getLogger("penny.api.llm")
T = TypeVar("T")
_END = object()


class Gate(Protocol):
    """What the API asks of an LLM gate: this module's, or api.llm_remote's in front of the LLM's own deployment."""

    @property
    def pending(self) -> int: ...

    def submit(self, work: Callable[..., T], *args: Any) -> Future[T]: ...

    async def run(self, work: Callable[..., T], *args: Any) -> T: ...

    async def stream(self, items: Callable[[], Iterator[T]]) -> AsyncIterator[T]: ...

    def close(self) -> None: ...


class LlmGate:
    def __init__(self, queue_depth: int, nice: int, metrics: Metrics) -> None:
        self.capacity = queue_depth + 1  # the one running plus those waiting
        self.metrics = metrics
        self._nice = nice
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="penny-llm", initializer=self._lower)
        self._lock = threading.Lock()
        self._pending = 0
        self._recent_seconds = 10.0  # moving average of one LLM job, for Retry-After

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, work: Callable[..., T], *args: Any) -> Future[T]:
        """Run `work(*args)` in the LLM worker, or raise a 503 ApiError when the queue is full."""
        with self._lock:
            if self._pending >= self.capacity:
                self.metrics.llm_rejected.inc()
                retry = max(1, round(self._recent_seconds * self._pending))
                raise ApiError(
                    503,
                    "llm_busy",
                    f"the local language model is busy ({self._pending} requests ahead; PENNY_LLM_QUEUE_DEPTH "
                    f"is {self.capacity - 1}); retry in about {retry} s",
                    {"Retry-After": str(retry)},
                )
            self._pending += 1
            self.metrics.llm_queue.set(self._pending)
        return self._executor.submit(self._timed, work, *args)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(work, *args))

    async def stream(self, items: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Iterate `items()` in the LLM worker and hand each item to the event loop as it comes.

        The slot is taken when this is awaited (raising 503 when full), so a refusal happens before any response
        is sent."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            iterator = items()
            try:
                for item in iterator:
                    if stop.is_set():  # the client went away: stop generating
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as exc:  # handed to the consumer, which raises it in the request's context
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                close = getattr(iterator, "close", None)
                if close:
                    close()
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        self.submit(produce)

        async def consume() -> AsyncIterator[T]:
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                stop.set()

        return consume()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _timed(self, work: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        try:
            return work(*args)
        finally:
            elapsed = time.monotonic() - started
            with self._lock:
                self._pending -= 1
                self._recent_seconds = 0.7 * self._recent_seconds + 0.3 * elapsed
                self.metrics.llm_queue.set(self._pending)

    def _lower(self) -> None:
        # Linux: PRIO_PROCESS with a thread id renices that thread; threads it starts (llama.cpp's) inherit it.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
        except (OSError, AttributeError):
            log.warning("could not lower the LLM worker's CPU priority; passage answers may slow while it runs")
