"""Memory: bytes of the weights as stored, peak resident memory, GPU peaks."""
from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.blocks import Memory

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _tensor_bytes(obj, seen: set) -> int:
    """Bytes of the tensors inside obj, each storage counted once (tied weights share one)."""
    if isinstance(obj, torch.Tensor):
        if hasattr(obj, "__tensor_flatten__") and type(obj) is not torch.Tensor \
                and not isinstance(obj, torch.nn.Parameter):  # torchao and other tensor subclasses
            names, _ = obj.__tensor_flatten__()
            return sum(_tensor_bytes(getattr(obj, n), seen) for n in names)
        if obj.is_quantized:  # torch's own qint8 tensors
            key = ("q", obj.data_ptr())
            size = obj.numel() * obj.element_size()
        else:
            try:
                storage = obj.untyped_storage()
                key, size = (storage.data_ptr(), obj.device), storage.nbytes()
            except (RuntimeError, NotImplementedError):
                key, size = ("t", id(obj)), obj.numel() * obj.element_size()
        if key in seen:
            return 0
        seen.add(key)
        return size
    if isinstance(obj, (tuple, list)):
        return sum(_tensor_bytes(o, seen) for o in obj)
    if isinstance(obj, torch.ScriptObject) and hasattr(obj, "__getstate__"):  # packed dynamic-quant params
        return _tensor_bytes(obj.__getstate__(), seen)
    return 0


def weights_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's state_dict as it would be serialised (what the weights cost to hold)."""
    seen: set = set()
    return sum(_tensor_bytes(v, seen) for v in model.state_dict().values())


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux); False where it cannot be reset."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """The kernel's high-water mark of resident memory since the last reset (or process start)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@dataclass
class GpuMemory:
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    nvml_process_bytes: int | None  # the driver's view of this process, allocator overhead included


def reset_gpu_peaks(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def gpu_memory(device: torch.device) -> GpuMemory | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return GpuMemory(torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device),
                     _nvml_process_bytes(device))


def _nvml_process_bytes(device: torch.device) -> int | None:
    try:
        import os

        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid():
                return int(proc.usedGpuMemory)
    except Exception:  # NVML missing or not permitted (containers hide PIDs): report nothing
        return None
    return None


def memory_result(device: torch.device, weights: int, scope: str) -> Memory:
    """Peaks since the last ``reset_peak_rss`` / ``reset_gpu_peaks``, with the weights' bytes."""
    gpu = gpu_memory(device)
    return Memory(weights_bytes=weights, peak_rss_bytes=peak_rss_bytes(), peak_rss_scope=scope,
                        gpu_peak_allocated_bytes=gpu.peak_allocated_bytes if gpu else None,
                        gpu_peak_reserved_bytes=gpu.peak_reserved_bytes if gpu else None,
                        gpu_nvml_process_bytes=gpu.nvml_process_bytes if gpu else None)
