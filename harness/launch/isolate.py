"""Run one function in a child process, so that a crash of native code (a segfault in llama.cpp or
ONNX Runtime) ends the child and not the sweep: optimum-benchmark's ``process`` launcher, for one point.

The child is *spawned*, not forked: a fork of a process whose OpenMP pool has run can hang. It dies
with its parent (PR_SET_PDEATHSIG), logs through the parent's handlers' formats and files, and
writes a Python traceback of a crash (``faulthandler``) that the parent reads back into its message.
Costs one interpreter start and the imports (about 4 s on 2 cores).
"""
from __future__ import annotations

import ctypes
import faulthandler
import logging
import multiprocessing
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Linux: this process gets SIGTERM when its parent dies (elsewhere the parent's cleanup must do)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class ChildCrashed(Exception):
    """The child ended without an answer: killed by a signal (its native code crashed) or exited."""
    exitcode: int
    frames: list[str]  # the innermost Python frames at the crash, innermost first (from faulthandler)
    traceback_path: Path

    def __str__(self) -> str:
        if self.exitcode < 0:
            try:
                how = f"died of signal {-self.exitcode} ({signal.Signals(-self.exitcode).name})"
            except ValueError:
                how = f"died of signal {-self.exitcode}"
        else:
            how = f"exited with status {self.exitcode} without an answer"
        where = f" in {' < '.join(self.frames)}" if self.frames else ""
        return f"the point's child process {how}{where} (traceback: {self.traceback_path})"


class ChildRaised(RuntimeError):
    """The function raised in the child; the message carries the child's traceback."""


def _crash_frames(text: str, count: int = 3) -> list[str]:
    """faulthandler's frames, innermost first: '  File "x.py", line 12 in f' -> 'f (x.py:12)'."""
    frames = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('File "') and " line " in line:
            path, rest = line[len('File "'):].split('", line ', 1)
            number, _, func = rest.partition(" in ")
            frames.append(f"{func} ({Path(path).name}:{number})")
        elif frames:
            break  # the first thread's stack only: the one that crashed
    return frames[:count]


def _log_handlers() -> tuple[int, list[tuple[str | None, str | None]]]:
    """The root logger's level and (file or None for stderr, format) per handler, to rebuild in the child."""
    root = logging.getLogger()
    handlers = []
    for h in root.handlers:
        fmt = h.formatter._fmt if h.formatter else None  # noqa: SLF001 (logging keeps no public getter)
        if isinstance(h, logging.FileHandler):
            handlers.append((h.baseFilename, fmt))
        elif isinstance(h, logging.StreamHandler):
            handlers.append((None, fmt))
    return root.level, handlers


def _child(send, fn: Callable[..., Any], args: tuple, traceback_path: Path, level: int,
           handlers: list[tuple[str | None, str | None]]) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops this child
    root = logging.getLogger()
    root.setLevel(level)
    for filename, fmt in handlers:
        h = logging.FileHandler(filename) if filename else logging.StreamHandler()
        h.setFormatter(logging.Formatter(fmt))
        root.addHandler(h)
    with open(traceback_path, "w", encoding="utf-8") as crash_log:
        faulthandler.enable(file=crash_log)
        try:
            answer = ("ok", fn(*args))
        except BaseException:  # noqa: BLE001 (any exception is the parent's to raise)
            answer = ("raised", traceback.format_exc())
        faulthandler.disable()
    send.send(answer)
    send.close()


def run_in_child(fn: Callable[..., T], *args: Any, traceback_path: Path) -> T:
    """``fn(*args)`` in a spawned child; its return value (picklable), or ChildRaised with the child's
    traceback, or ChildCrashed naming the signal and where it struck. ``fn`` must be importable by name."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    traceback_path.parent.mkdir(parents=True, exist_ok=True)
    level, handlers = _log_handlers()
    # not a daemon: a daemonic process may not start processes of its own (lm-eval, joblib may)
    child = ctx.Process(target=_child, args=(send, fn, args, traceback_path, level, handlers))
    child.start()
    send.close()  # the child holds the only writing end: a crash closes it, and recv raises EOFError
    try:
        try:
            kind, value = receive.recv()
        except EOFError:
            child.join()
            text = traceback_path.read_text(encoding="utf-8", errors="replace") if traceback_path.exists() else ""
            raise ChildCrashed(child.exitcode, _crash_frames(text), traceback_path) from None
        child.join()
        if child.exitcode:
            log.warning("the child process answered, then exited with %s (after its work: the answer stands)",
                        child.exitcode)
    finally:  # an interrupt (or any error here) must not leave the child running
        if child.is_alive():
            child.terminate()
            child.join(5)
            if child.is_alive():
                child.kill()
        receive.close()
    traceback_path.unlink(missing_ok=True)  # kept only as a crash's evidence
    if kind == "raised":
        raise ChildRaised(f"the point's child process raised:\n{value}")
    return value
