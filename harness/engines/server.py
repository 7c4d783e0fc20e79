"""An OpenAI-compatible server that meekbench starts for a serving scenario: on 127.0.0.1 at a free
port, in its own process group, health-checked (``GET /v1/models``) before any traffic, and always
stopped afterwards (on success, failure, interrupt and SIGTERM; on Linux also when this process
dies, through PR_SET_PDEATHSIG). Its output goes to a log file that a failure message names.

An engine's schema names the function that gives its server's command line (harness/config/engines.py
``serve``; llama.cpp's in harness/engines/llamacpp.py); any command line that serves ``/v1/completions``
runs through the same ``ServerProcess`` (tests use a stand-in).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from harness.launch.isolate import die_with_parent

HOST = "127.0.0.1"


class ServerStartError(RuntimeError):
    """The server did not come up (it exited, or missed its health check's deadline)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _own_group_dying_with_parent() -> None:  # runs in the child before exec
    os.setsid()
    die_with_parent()  # not Linux: the finally blocks and the SIGTERM handler still stop it


class ServerProcess:
    """``with ServerProcess(cmd, port, log, timeout_s) as url:`` the server's base URL while it runs."""

    def __init__(self, command: Sequence[str], port: int, log_path: Path, startup_timeout_s: float):
        self.command, self.port, self.log_path = list(command), port, Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.url = f"http://{HOST}:{port}"
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None  # start to the first healthy answer
        self._previous_sigterm = None

    def __enter__(self) -> str:
        self.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_own_group_dying_with_parent if os.name == "posix" else None)
        log.close()
        if threading_main():  # SIGTERM to meekbench stops the server too (finally blocks run)
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_system_exit)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _wait_healthy(self) -> None:
        started = time.monotonic()
        deadline = started + self.startup_timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerStartError(f"the server exited with code {self.proc.returncode} before answering; "
                                       f"its log: {self.log_path}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2) as resp:
                    if resp.status == 200:
                        self.startup_s = round(time.monotonic() - started, 3)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)  # a sleeping poll: a busy parent would take one of the cores the server needs
        raise ServerStartError(f"the server did not answer GET /v1/models within scenario.target.startup_timeout_s="
                               f"{self.startup_timeout_s:g}; its log: {self.log_path}: {self.log_tail()}")

    def log_tail(self, chars: int = 300) -> str:
        try:
            return " ".join(self.log_path.read_text(errors="replace")[-chars:].split())
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the server's process group, then SIGKILL after ``grace_s``."""
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_system_exit(signum, frame) -> None:
    raise SystemExit(128 + signum)
