"""The result of the hardware probes, torch-free so the record schema can reuse it."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Probes:
    device: str
    bandwidth_bytes_per_s: float  # median of tensor copies (read + write bytes / time)
    matmul_flops_per_s: float  # median of square matmuls (2 n^3 / time)
    matmul_dtype: str
    matmul_n: int
    copy_bytes: int
    samples_bandwidth: list[float] = field(default_factory=list)
    samples_matmul: list[float] = field(default_factory=list)
    measured_at: float = 0.0
