"""Test helper: an interrupt whose ``KeyboardInterrupt`` a finalizer swallows."""

from __future__ import annotations

import gc
import os
import signal
import weakref

__all__ = ["lose_an_interrupt"]


class _Thing:
    pass


def lose_an_interrupt(sig: int = signal.SIGINT) -> None:
    """Send ``sig`` to this process from inside a weakref callback, where Python drops the
    ``KeyboardInterrupt`` its handler raises (as in SQLAlchemy's ``InstanceState._cleanup``)."""
    finished: list[bool] = []

    def callback(_: object) -> None:
        os.kill(os.getpid(), sig)
        for _ in range(10_000):  # the handler runs within a few bytecodes, in here
            pass
        finished.append(True)  # never reached: the KeyboardInterrupt left the callback

    thing = _Thing()
    ref = weakref.ref(thing, callback)
    del thing
    gc.collect()
    assert ref() is None and not finished, "the signal was not handled inside the callback"
