"""Energy over a measured interval: NVML on NVIDIA GPUs, RAPL on CPUs where readable."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from harness.blocks import Energy

RAPL_ROOT = Path("/sys/class/powercap")


@dataclass
class EnergyReading:
    joules: float | None
    source: str | None  # "nvml" | "rapl"
    reason: str | None  # why joules is None


def total_energy(scenarios, meter: "EnergyMeter") -> Energy:
    """Sum over the scenarios that have a reading (objects with ``energy_j`` and ``generated_tokens``)."""
    measured = [sc for sc in scenarios if sc.energy_j is not None]
    if not measured:
        return Energy(reason=meter.reason or "no scenario completed")
    joules = sum(sc.energy_j for sc in measured)
    return Energy(joules=joules, j_per_token=joules / sum(sc.generated_tokens for sc in measured),
                       source=meter.source)


class EnergyMeter:
    """Reads a cumulative energy counter at start() and stop(); None with a reason where none exists."""

    def __init__(self, device: torch.device):
        self.device = device
        self._read, self.source, self.reason = self._pick()
        self._start: float | None = None

    def _pick(self):
        if self.device.type == "cuda":
            try:
                import pynvml

                pynvml.nvmlInit()
                handle = pynvml.nvmlDeviceGetHandleByIndex(self.device.index or 0)
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # mJ since driver load
                return (lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3), "nvml", None
            except Exception as e:
                return None, None, f"NVML total-energy counter unavailable: {type(e).__name__}: {e}"
        zones = sorted(RAPL_ROOT.glob("intel-rapl:[0-9]*")) if RAPL_ROOT.exists() else []
        zones = [z for z in zones if ":" in z.name and z.name.count(":") == 1]  # packages, not sub-zones
        if not zones:
            return None, None, "no RAPL powercap zones (/sys/class/powercap) on this machine"
        try:
            ranges = [int((z / "max_energy_range_uj").read_text()) for z in zones]
            [int((z / "energy_uj").read_text()) for z in zones]
        except OSError as e:
            return None, None, f"RAPL present but not readable ({e}); reading it usually needs root"
        self._ranges = ranges
        self._zones = zones
        return self._read_rapl, "rapl", None

    def _read_rapl(self) -> list[int]:
        return [int((z / "energy_uj").read_text()) for z in self._zones]

    def start(self) -> None:
        if self._read is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self._start = self._read()

    def stop(self) -> EnergyReading:
        if self._read is None or self._start is None:
            return EnergyReading(None, None, self.reason)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        end = self._read()
        if self.source == "rapl":  # counters wrap at max_energy_range_uj
            joules = sum(((e - s) % r) / 1e6 for s, e, r in zip(self._start, end, self._ranges))
        else:
            joules = end - self._start
        return EnergyReading(joules, self.source, None)
