"""Micro-batching: concurrent requests merged into one feature query and one model call."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from churnclv.serving._requests import CustomerIn, utcnow

__all__ = ["MicroBatcher", "limit_threads"]


@dataclass
class _Pending:
    customers: Sequence[CustomerIn]
    future: asyncio.Future[list[dict[str, Any]]]


def limit_threads() -> None:
    """One OpenMP thread per worker thread: LightGBM's thread spin costs more than it gives."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl missing or unsupported
        pass


class MicroBatcher:
    """Merge concurrent requests into one feature query and one model call.

    Requests queue while a batch runs; when it finishes, everything queued
    (up to ``max_customers``) becomes the next batch, so an idle service
    answers at once and a busy one amortises the per-batch cost. Work runs on
    one dedicated thread, keeping the event loop free to accept requests.

    Parameters
    ----------
    score : callable
        ``score(customers, now) -> list of prediction dicts`` (one per customer).
    max_customers : int
        Most customers in one batch.
    max_wait_ms : float
        Extra time to wait for more requests once the first arrives (0 = none).
    """

    def __init__(
        self,
        score: Callable[[Sequence[CustomerIn], datetime], list[dict[str, Any]]],
        *,
        max_customers: int = 256,
        max_wait_ms: float = 0.0,
    ) -> None:
        self._score = score
        self.max_customers = max_customers
        self.max_wait_ms = max_wait_ms
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="churnclv-batch", initializer=limit_threads
        )
        self._queue: asyncio.Queue[_Pending] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.batched_customers = 0
        self.max_batch_seen = 0
        self.recent: collections.deque[tuple[int, float, float]] = collections.deque(maxlen=1000)
        self._last_ms = 0.0
        self._pending = 0  # requests submitted and not yet answered

    def _ensure_started(self) -> asyncio.Queue[_Pending]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None or self._task is None or self._task.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue))
        return self._queue

    async def submit(self, customers: Sequence[CustomerIn]) -> list[dict[str, Any]]:
        """Score ``customers`` (validated) within the next batch; same order out."""
        self._pending += 1
        try:
            queue = self._ensure_started()
            fut: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
            await queue.put(_Pending(customers, fut))
            return await fut
        finally:
            self._pending -= 1

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await queue.get()
            batch = [first]
            size = len(first.customers)
            if self.max_wait_ms > 0:
                deadline = loop.time() + self.max_wait_ms / 1000
                while size < self.max_customers and (left := deadline - loop.time()) > 0:
                    try:
                        item = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                    batch.append(item)
                    size += len(item.customers)
            while size < self.max_customers and not queue.empty():
                item = queue.get_nowait()
                batch.append(item)
                size += len(item.customers)
            await self._execute(loop, batch)

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        merged, owners = _merge(live)
        now = utcnow()
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._timed, merged, now)
        except Exception:
            if len(live) == 1:
                exc_info = _current_exception()
                if not live[0].future.done():
                    live[0].future.set_exception(exc_info)
                return
            for p in live:  # isolate the request that failed; the others still get answers
                await self._execute(loop, [p])
            return
        self.batches += 1
        self.batched_customers += len(merged)
        self.max_batch_seen = max(self.max_batch_seen, len(merged))
        self.recent.append((len(merged), (time.perf_counter() - started) * 1000, self._last_ms))
        for p, (start, stop) in zip(live, owners, strict=True):
            if not p.future.done():
                p.future.set_result(results[start:stop])

    def _timed(self, customers: Sequence[CustomerIn], now: datetime) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        try:
            return self._score(customers, now)
        finally:
            self._last_ms = (time.perf_counter() - t0) * 1000

    def stats(self) -> dict[str, Any]:
        """Counters and the size and duration percentiles of the last 1,000 batches.

        ``batch_ms`` runs from hand-off to the worker thread until the results
        are back on the event loop; ``score_ms`` is the scoring call alone.
        """
        out: dict[str, Any] = {
            "batches": self.batches,
            "customers": self.batched_customers,
            "mean_batch": round(self.batched_customers / self.batches, 2) if self.batches else None,
            "max_batch": self.max_batch_seen,
        }
        if self.recent:
            arr = np.array(self.recent, dtype=float)
            for i, name in enumerate(("size", "batch_ms", "score_ms")):
                p50, p99 = np.percentile(arr[:, i], [50, 99])
                out[f"recent_{name}_p50"] = round(float(p50), 2)
                out[f"recent_{name}_p99"] = round(float(p99), 2)
        return out

    async def aclose(self, timeout_s: float = 120.0) -> None:
        """Close once every submitted request is answered (or after ``timeout_s``).

        For a batcher no new request can reach any more (its champion was swapped out).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.close()

    def close(self) -> None:
        """Stop the batching task and the worker thread."""
        if self._task is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _current_exception() -> BaseException:
    import sys

    exc = sys.exc_info()[1]
    assert exc is not None
    return exc


def _merge(batch: list[_Pending]) -> tuple[list[CustomerIn], list[tuple[int, int]]]:
    """Concatenate the batch's customers; ``owners`` gives each request's slice."""
    merged: list[CustomerIn] = []
    owners: list[tuple[int, int]] = []
    for p in batch:
        start = len(merged)
        merged.extend(p.customers)
        owners.append((start, len(merged)))
    return merged, owners
