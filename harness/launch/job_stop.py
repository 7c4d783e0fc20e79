"""A scheduler's "stop now", delivered so that the point records it.

Under SLURM, submitit handles the job's time-limit signal (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL
says otherwise): it requeues the job (SystemExit), or, when it may not, raises
``UncompletedJobError``, a RuntimeError, at whatever bytecode the signal interrupts. Inside a
library's ``try: ... except Exception:`` that error is swallowed: transformers calls several such
guards in every forward (``is_torchdynamo_compiling``, ``is_exporting``, ``is_scripting``), a point
spends most of its time there, and it then runs on until SLURM kills it, unrecorded.

``stop_reaches_the_point`` re-raises that error as ``JobStopped``, a BaseException as
KeyboardInterrupt is, which such guards let through. The point records it as its failure; if it
escapes a point (a serving sweep), it leaves as submitit's own error again, so that submitit still
writes the job's result.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's own setting, read the way submitit reads it


class JobStopped(BaseException):
    """The scheduler ended the job (no requeue left); ``original`` is the error its handler raised."""

    def __init__(self, original: Exception):
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


def preempt_signal() -> signal.Signals:
    name = os.environ.get(PREEMPT_SIGNAL_ENV, "USR2")
    try:
        return signal.Signals[f"SIG{name}"]
    except KeyError:
        raise ValueError(f"{PREEMPT_SIGNAL_ENV}={name!r} names no signal; valid: USR1, USR2, TERM, ...") from None


@contextmanager
def stop_reaches_the_point(signum: int | None = None) -> Iterator[None]:
    """While inside, an error raised by the Python handler of ``signum`` (submitit's preemption
    signal by default) arrives as JobStopped. Outside a scheduler's job, where no Python handler is
    installed, or off the main thread, nothing changes."""
    signum = preempt_signal() if signum is None else signum
    previous = signal.getsignal(signum)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(number, frame):
        try:
            previous(number, frame)
        except Exception as e:  # "not requeued": the job is over; a requeue's SystemExit passes as it is
            raise JobStopped(e) from e

    signal.signal(signum, handler)
    try:
        yield
    except JobStopped as e:  # not recorded by a point: hand the scheduler its own error
        raise e.original from e
    finally:
        signal.signal(signum, previous)
