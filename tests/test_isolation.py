"""engine.isolate: a point in a child process, so a crash of an engine's native code is a failed
record and the sweep goes on. The crashes here are real segfaults (a read of address 0 through ctypes)."""
from __future__ import annotations

import ctypes
import logging

import pytest

from harness.launch.isolate import ChildCrashed, ChildRaised, run_in_child
from harness.results.store import CRASH_TRACEBACK, point_key, read_record, run_dir

# no torch at this module's top: each child process imports it to find its function


def add(a: int, b: int) -> int:
    logging.getLogger("tests.isolation").info("adding in the child")
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def segfault(*_args) -> None:
    ctypes.string_at(0)  # native code reading address 0: SIGSEGV


def test_the_child_returns_what_the_function_returns_and_raises_what_it_raises(tmp_path):
    assert run_in_child(add, 2, 3, traceback_path=tmp_path / "tb.txt") == 5
    assert not (tmp_path / "tb.txt").exists()  # kept only as a crash's evidence
    with pytest.raises(ChildRaised, match="ValueError: no such thing"):
        run_in_child(fail, "no such thing", traceback_path=tmp_path / "tb.txt")


def test_a_segfault_in_the_child_names_its_signal_and_where_it_struck(tmp_path):
    with pytest.raises(ChildCrashed) as crashed:
        run_in_child(segfault, traceback_path=tmp_path / "tb.txt")
    assert crashed.value.exitcode == -11
    assert crashed.value.frames[0].startswith("string_at (")  # ctypes' frame, innermost first
    assert any(f.startswith("segfault (test_isolation.py:") for f in crashed.value.frames), crashed.value.frames
    assert "signal 11 (SIGSEGV)" in str(crashed.value)
    assert "Segmentation fault" in (tmp_path / "tb.txt").read_text()


def test_a_crashed_point_is_a_failed_record_and_the_next_point_runs(run_cfg, monkeypatch):
    """The point's body stands in for an engine whose native code segfaults mid-measurement."""
    from harness.run import run_point

    monkeypatch.setattr("harness.scenarios.single._run_here", segfault)
    crashed = run_point(run_cfg("model=tiny-s", "engine=llamacpp", "variant=fp32", "eval=none"))
    print(crashed.error)
    assert crashed.status == "failed" and "SIGSEGV" in crashed.error and "segfault (test_isolation.py" in crashed.error
    folder = run_dir(crashed.config["results_dir"], crashed.run_id)
    assert read_record(folder / "record.json").status == "failed"
    assert (folder / CRASH_TRACEBACK).exists() and crashed.engine.name == "llamacpp"
    monkeypatch.undo()  # the next point of the sweep, the same point again, runs as usual in its child
    again = run_point(run_cfg("model=tiny-s", "engine=llamacpp", "variant=fp32", "eval=none"))
    assert again.status == "ok", again.error
    assert again.run_id == crashed.run_id and again.engine.tensor_types == {"F32": again.engine.tensor_types["F32"]}
    assert not (folder / CRASH_TRACEBACK).exists()


def test_isolation_is_not_part_of_the_point_identity(run_cfg):
    from omegaconf import OmegaConf

    keys = {point_key(OmegaConf.to_container(run_cfg("engine=llamacpp", f"engine.isolate={flag}"), resolve=True), "hw")
            for flag in ("true", "false")}
    assert len(keys) == 1
