"""Work-arounds for BentoML internals that cost the service latency, applied per worker.

``cancel_timeout_timers``: BentoML 1.4's ``TimeoutMiddleware`` schedules a
``loop.call_later(timeout, ...)`` per request and never cancels it, so every
request's future, contextvars and OpenTelemetry span stay alive for the whole
traffic timeout (120 s here). At 100 requests/s per worker that is about
12,000 requests' objects; each full garbage collection walks them, and the
collections grew from 7 to 30 ms within 15 s, taking /predict's p99 at
200 req/s from ~50 ms in the first 10 s to ~130 ms in the sixth (measured:
``gc.callbacks`` in a worker, ``benchmarks/serve.py``'s per-10-s p99). The
patched ``__call__`` is the original with the timer cancelled once the
request is over; it is applied only while the installed BentoML still has the
uncancelled timer (the original source is checked), so a fixed release is
left alone. BentoML is Apache-2.0; the body below follows its
``bentoml._internal.server.http.traffic.TimeoutMiddleware.__call__``.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

__all__ = ["cancel_timeout_timers"]

#: The timer scheduled as a bare statement: its handle is dropped, so nothing can cancel it.
_UNCANCELLABLE_TIMER = re.compile(
    r"^\s*loop\.call_later\(self\.timeout, self\._set_timer_out, waiter\)\s*$", re.MULTILINE
)


def cancel_timeout_timers() -> bool:
    """Patch BentoML's ``TimeoutMiddleware`` to cancel its timer; True when patched (now or
    before), False when the installed BentoML does not have the uncancelled timer."""
    try:
        from bentoml._internal.server.http.traffic import TimeoutMiddleware
    except ImportError:  # pragma: no cover - BentoML moved the class: nothing to patch
        return False
    if getattr(TimeoutMiddleware, "_churnclv_cancels_timer", False):
        return True
    try:
        source = inspect.getsource(TimeoutMiddleware.__call__)
    except (OSError, TypeError):  # pragma: no cover - no source to check against
        return False
    if not _UNCANCELLABLE_TIMER.search(source):
        return False
    from starlette.responses import JSONResponse

    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
        try:
            try:
                await waiter
            except TimeoutError:
                if fut.cancel():
                    resp = JSONResponse(
                        {"error": f"Not able to process the request in {self.timeout} seconds"},
                        status_code=504,
                    )
                    await resp(scope, receive, send)
            else:
                await fut  # wait for the future to finish
        finally:
            timer.cancel()
        return None

    TimeoutMiddleware.__call__ = __call__  # type: ignore[method-assign]
    TimeoutMiddleware._churnclv_cancels_timer = True  # type: ignore[attr-defined]
    return True
