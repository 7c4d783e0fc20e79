"""engine=vllm: vLLM's OpenAI-compatible server, started in vLLM's own environment (harness/engines/vllm_env.py)
on the model's transformers checkpoint, so it serves the same weights the fp32 reference scores.

The command line carries its environment variables (``env VAR=... python -m ...``), so a record's
``launch_command`` is the whole recipe. On a CPU, vLLM binds its OpenMP threads to cores: by default it
reserves one core for its API server and binds the rest (on 2 cores: 1 thread); meekbench binds
``engine.threads`` cores (torch's count unless set), as every engine gets the same cores here.
"""
from __future__ import annotations

import os

import torch

from harness.blocks import EngineInfo, VariantInfo
from harness.engines.base import EnginePoint, Served, card_of
from harness.engines.server import HOST
from harness.variants import parse_dtype


# prompt log-probabilities a request may ask for per position: served fidelity asks compare.top_k (32 by default;
# vLLM's own cap is 20)
MAX_LOGPROBS = 128


def cores(threads: int) -> str:
    """The first ``threads`` cores this process may run on, as VLLM_CPU_OMP_THREADS_BIND lists them."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return ",".join(str(c) for c in allowed[:threads])


def server_command(python: str, checkpoint: str, port: int, api_model: str, dtype: str, max_model_len: int,
                   threads: int, kv_cache_gib: float, max_num_seqs: int | None) -> list[str]:
    """vLLM's OpenAI-compatible API server for one checkpoint (``python -m``: vllm-cpu's ``vllm`` console script
    looks for a package named vllm and fails)."""
    env = [f"VLLM_CPU_KVCACHE_SPACE={kv_cache_gib:g}", f"VLLM_CPU_OMP_THREADS_BIND={cores(threads)}",
           f"OMP_NUM_THREADS={threads}", "VLLM_NO_USAGE_STATS=1", "HF_HUB_OFFLINE=1"]
    return ["env", *env, python, "-m", "vllm.entrypoints.openai.api_server", "--model", checkpoint,
            "--served-model-name", api_model, "--dtype", dtype, "--max-model-len", str(max_model_len),
            "--host", HOST, "--port", str(port), "--disable-uvicorn-access-log", "--max-logprobs", str(MAX_LOGPROBS),
            *(["--max-num-seqs", str(max_num_seqs)] if max_num_seqs else [])]


def serve(point: EnginePoint, api_model: str) -> Served:
    """vLLM's server on the point's checkpoint at the variant's dtype (each request's context:
    point.context_length)."""
    from harness.engines import vllm_env
    from harness.models import checkpoint_dir

    engine, variant = point.engine, point.variant
    python = vllm_env.interpreter(engine.python)  # before the checkpoint is made: a missing environment says so first
    version = vllm_env.version(python)
    checkpoint = checkpoint_dir(point.model, point.offline)
    torch_dtype = parse_dtype(variant.dtype)
    dtype = str(torch_dtype).removeprefix("torch.")  # as vLLM's --dtype spells it
    threads = engine.threads or torch.get_num_threads()
    command = lambda port: server_command(str(python), str(checkpoint.resolve()), port, api_model, dtype,  # noqa: E731
                                          point.context_length, threads, engine.kv_cache_gib, engine.max_num_seqs)
    info = EngineInfo(name="vllm", version=version, build=f"python {python}", artifact=str(checkpoint.resolve()),
                      threads=threads)
    served_variant = VariantInfo(name=variant.name, kind=variant.kind, dtype=dtype, method=None,
                                 library="vLLM", library_version=version.partition("==")[2],
                                 weight_bits=torch_dtype.itemsize * 8)
    return Served(command, checkpoint, served_variant, info, card_of(checkpoint))
