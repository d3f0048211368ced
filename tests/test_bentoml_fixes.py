"""The per-worker work-around for BentoML's TimeoutMiddleware timers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("bentoml")

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from churnclv.serving._bentoml_fixes import cancel_timeout_timers


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _slow_app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(5)


def _serve(app: Any, timeout: float) -> tuple[list[Any], list[Any]]:
    """One request through TimeoutMiddleware; the messages sent and its timeout timers still
    pending (the app's own timers are not counted)."""
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def run() -> list[Any]:
        await TimeoutMiddleware(app, timeout=timeout)({"type": "http"}, receive, send)
        loop = asyncio.get_running_loop()
        return [
            h
            for h in loop._scheduled  # type: ignore[attr-defined]
            if not h.cancelled() and getattr(h._callback, "__name__", "") == "_set_timer_out"
        ]

    return sent, asyncio.run(run())


def test_no_timer_outlives_its_request_once_patched() -> None:
    """After the patch, a finished request leaves no pending timer (its objects can go)."""
    assert cancel_timeout_timers()
    sent, pending = _serve(_app, timeout=120)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert pending == []


def test_timeouts_still_answer_504_once_patched() -> None:
    """A request past the traffic timeout still gets BentoML's 504 answer."""
    assert cancel_timeout_timers()
    sent, pending = _serve(_slow_app, timeout=0.05)
    assert sent[0]["status"] == 504
    assert pending == []
