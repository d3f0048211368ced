"""Interrupts that a finalizer swallowed are not lost (``churnclv._interrupt``)."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from _signals import lose_an_interrupt

from churnclv import _interrupt
from churnclv._interrupt import (
    forget_interrupts,
    handle_interrupts,
    interrupted,
    raise_if_interrupted,
)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_swallowed_interrupt_is_raised_again(sig: int) -> None:
    """A signal whose KeyboardInterrupt a finalizer dropped is remembered and raised again."""
    with handle_interrupts():
        lose_an_interrupt(sig)  # returns normally: the first raise was lost
        assert interrupted() == sig
        with pytest.raises(KeyboardInterrupt, match=f"signal {sig}"):
            raise_if_interrupted()


def test_a_signal_raises_keyboard_interrupt_at_once() -> None:
    """Outside finalizers SIGTERM and SIGINT raise KeyboardInterrupt where they land."""
    with handle_interrupts(), pytest.raises(KeyboardInterrupt, match=f"signal {signal.SIGTERM}"):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs within a few bytecodes
            pass


def test_no_signal_means_nothing_to_raise() -> None:
    """Without a signal there is nothing recorded and nothing raised."""
    with handle_interrupts():
        assert interrupted() is None
        raise_if_interrupted()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_block_restores_handlers_and_forgets() -> None:
    """On exit the previous handlers are back and the record is empty."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with handle_interrupts():
        lose_an_interrupt()
    assert {s: signal.getsignal(s) for s in before} == before
    assert interrupted() is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_forget_clears_the_record() -> None:
    """forget_interrupts clears a received signal (a server stopped with Ctrl-C)."""
    with handle_interrupts():
        lose_an_interrupt()
        forget_interrupts()
        raise_if_interrupted()
        assert interrupted() is None


def test_outside_the_main_thread_nothing_is_installed() -> None:
    """In another thread the block installs no handler (Python forbids it) and still runs."""
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def body() -> None:
        with handle_interrupts():
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [before] and before is not _interrupt._handler


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_command_whose_interrupt_was_swallowed_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI ends with exit 1 and 'aborted' when a command's interrupt was lost midway."""
    from churnclv import cli

    def command(**_: object) -> int:
        lose_an_interrupt(signal.SIGTERM)
        return 0  # the command ran on as if nothing had happened

    monkeypatch.setattr(cli, "app", command)
    assert cli.main(["train"]) == 1
    assert "aborted" in capsys.readouterr().err
