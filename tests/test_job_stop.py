"""A SLURM job's end reaches the point, even where it lands inside a library's ``except Exception``.

The handler here stands in for submitit's once no requeue is left (it raises a RuntimeError, as
submitit's ``UncompletedJobError`` is); tests/test_slurm.py runs the real one under SLURM.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading

import pytest
import torch

from harness.launch.job_stop import JobStopped, stop_reaches_the_point
from harness.results.store import read_record, run_dir
from harness.run import run_point

SIG = signal.SIGUSR2
GIVE_UP = "Job not requeued because: timed-out too many times."


class UncompletedJobError(RuntimeError):
    """submitit's error, without importing submitit (an optional dependency)."""


@pytest.fixture
def scheduler_gives_up():
    def give_up(signum, frame):
        raise UncompletedJobError(GIVE_UP)

    previous = signal.signal(SIG, give_up)
    yield give_up
    signal.signal(SIG, previous)


def _inside_a_library_guard() -> str:
    """As transformers' ``is_torchdynamo_exporting``: the signal is handled inside ``try: ... except Exception``."""
    try:
        os.kill(os.getpid(), SIG)  # the handler runs as the call returns, inside the try
        return "ran on"
    except Exception:
        return "swallowed"


def test_a_library_guard_swallows_the_plain_handlers_error(scheduler_gives_up):
    assert _inside_a_library_guard() == "swallowed"  # the defect this module exists for


def test_the_stop_passes_a_library_guard_and_leaves_as_the_schedulers_own_error(scheduler_gives_up):
    with stop_reaches_the_point(SIG):
        with pytest.raises(JobStopped, match="timed-out too many times") as caught:
            _inside_a_library_guard()
    assert isinstance(caught.value.original, UncompletedJobError)
    assert signal.getsignal(SIG) is scheduler_gives_up  # restored on the way out
    with pytest.raises(UncompletedJobError, match="timed-out too many times"):  # unrecorded: submitit's own
        with stop_reaches_the_point(SIG):
            _inside_a_library_guard()


def test_a_requeue_still_exits_and_outside_a_job_nothing_is_installed():
    previous = signal.signal(SIG, lambda signum, frame: sys.exit(-1))  # submitit's requeue path
    try:
        with pytest.raises(SystemExit):
            with stop_reaches_the_point(SIG):
                _inside_a_library_guard()
    finally:
        signal.signal(SIG, previous)
    with stop_reaches_the_point(SIG):
        assert signal.getsignal(SIG) == previous  # no Python handler: left alone


def test_a_bad_preempt_signal_setting_is_named(monkeypatch):
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR3")
    with pytest.raises(ValueError, match="SUBMITIT_PREEMPT_SIGNAL='USR3'"):
        with stop_reaches_the_point():
            pass


def test_a_point_stopped_inside_transformers_guard_is_recorded_as_failed(run_cfg, scheduler_gives_up, monkeypatch):
    """The stop lands in the model's first forward, inside transformers' ``except Exception`` around
    ``torch.compiler.is_exporting``: the point records it rather than timing on (20 s of it)."""
    real = torch.compiler.is_exporting

    def stop_lands_here():
        if sys._getframe(1).f_code.co_name == "is_torchdynamo_exporting":  # torch calls it unguarded too
            monkeypatch.setattr(torch.compiler, "is_exporting", real)  # once
            os.kill(os.getpid(), SIG)
        return real()

    monkeypatch.setattr(torch.compiler, "is_exporting", stop_lands_here)
    cfg = run_cfg("model=tiny-xs", "bench.min_seconds=20", "bench.max_iterations=1000000")
    rec = run_point(cfg)
    assert torch.compiler.is_exporting is real, "the model never reached the guard"
    assert rec.status == "failed" and "JobStopped: UncompletedJobError" in rec.error and GIVE_UP in rec.error, rec.error
    assert read_record(run_dir(cfg.results_dir, rec.run_id) / "record.json") == rec
    assert signal.getsignal(SIG) is scheduler_gives_up


def _signal_the_step(parent_only: bool) -> None:
    """As slurmstepd does with the job's time-limit signal: every process of the step (or the parent only)."""
    for pid in ([] if parent_only else [c.pid for c in multiprocessing.active_children()]) + [os.getpid()]:
        os.kill(pid, SIG)


@pytest.mark.parametrize("parent_only", [True, False], ids=["parent", "whole-step"])
def test_an_isolated_point_stopped_while_its_child_measures_is_recorded_and_the_child_ended(
        run_cfg, scheduler_gives_up, parent_only):
    """engine.isolate: the parent waits on its child when the stop comes; it ends the child and records.
    Signalled too, first, the child dies of the signal (its default action): the record still says
    that the job ended, not that the child crashed."""
    cfg = run_cfg("model=tiny-xs", "engine.isolate=true", "bench.min_seconds=20", "bench.max_iterations=1000000")
    threading.Timer(3.0, _signal_the_step, (parent_only,)).start()  # the child needs >20 s to answer
    rec = run_point(cfg)
    assert rec.status == "failed" and rec.error.startswith("JobStopped: UncompletedJobError") and GIVE_UP in rec.error
    assert multiprocessing.active_children() == []
