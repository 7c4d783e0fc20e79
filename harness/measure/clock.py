"""A clock that is only read after the device has finished its queued work."""
from __future__ import annotations

import time

import torch


class DeviceClock:
    """perf_counter on CPU; on CUDA, synchronise first so queued kernels are counted."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda-synchronize+perf_counter" if device.type == "cuda" else "perf_counter"

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def now(self) -> float:
        self.sync()
        return time.perf_counter()
