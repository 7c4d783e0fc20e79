"""llama.cpp through llama-cpp-python: GGUF files made from the model's transformers checkpoint,
quantised by llama.cpp's own quantiser, scored and decoded on the same token ids as transformers.

Artifacts live under ``engine.artifact_dir/<model>/``: ``F32.gguf`` (or ``F16.gguf``) written by
harness/engines/gguf_export.py, and ``<TYPE>.gguf`` from ``llama_model_quantize``, each with a
sidecar JSON naming what it was made from; a stale one (another checkpoint, another llama.cpp) is
made again. Quantisation runs in a child process, so a crash of the native quantiser becomes a
``failed`` record instead of taking the sweep down. ``variant=gguf-shipped`` measures the model's
own GGUF file as shipped (SmolLM2's Q4_1).

Held-out scoring evaluates each window from an empty KV cache with logits for every position;
decoding is a greedy loop of ``Llama.eval`` calls with the KV cache (EOS masked, as
``min_new_tokens`` does in transformers), one timestamp per token, and llama.cpp's own perf
counters read per request so its TPOT can be set beside the harness's.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.blocks import EngineInfo
from harness.engines.base import EngineModel, EnginePoint, MissingBuildError, Prepared, Served, card_of, fresh
from harness.engines.gguf_export import FLOAT_TYPES, ExportError, export_gguf
from harness.engines.server import HOST
from harness.io import sha256 as _sha256
from harness.models.gguf_checkpoint import locate, read_header
from harness.measure.latency import Decoder, Request, TokenTimestamps
from harness.variants import UnsupportedVariantError, VariantInfo

log = logging.getLogger(__name__)

KV_ELEMENT_BYTES = 2  # llama.cpp's default KV cache type is F16
WRITER = "meekbench gguf_export 1"  # bumped when the writer's output changes: floats are written again
# a baseline's dtype as a GGUF file type: F32 and F16 written from the checkpoint, BF16 by llama.cpp's quantiser
DTYPE_FILE_TYPE = {"float32": "F32", "fp32": "F32", "float16": "F16", "fp16": "F16", "bfloat16": "BF16", "bf16": "BF16"}


def file_types() -> dict[str, int]:
    """llama.cpp's file types by name (F32, F16, Q8_0, Q4_K_M, ...) -> llama_ftype, from the gguf package's enum."""
    import gguf

    return {t.name.removeprefix("MOSTLY_").removeprefix("ALL_"): int(t) for t in gguf.LlamaFileType
            if t.name != "GUESSED"}


def _llama_cpp():
    try:
        import llama_cpp
    except Exception as e:  # not installed, or its shared library fails to load
        raise MissingBuildError(f"llama-cpp-python is not usable here ({type(e).__name__}: {e}); "
                                "`MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh` builds it from source (about 6 min on 2 cores, cached)") from e
    return llama_cpp


def _checkpoint_sha256(checkpoint: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(checkpoint.glob("*.safetensors")) + [checkpoint / "config.json", checkpoint / "tokenizer.json"]:
        if file.exists():
            digest.update(_sha256(file).encode())
    return digest.hexdigest()


def _publish(tmp: Path, out: Path, made_from: dict[str, Any], started: float) -> None:
    """The artifact and its sidecar, in place only once complete (concurrent points each write their own tmp)."""
    out.with_suffix(".json").write_text(json.dumps({"made_from": made_from, "sha256": _sha256(tmp),
                                                    "seconds": round(time.perf_counter() - started, 2)}, indent=1))
    os.replace(tmp, out)


def float_artifact(checkpoint: Path, out_dir: Path, float_type: str) -> Path:
    out = out_dir / f"{float_type}.gguf"
    made_from = {"checkpoint_sha256": _checkpoint_sha256(checkpoint), "writer": WRITER}
    if fresh(out, out.with_suffix(".json"), made_from):
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    started, tmp = time.perf_counter(), out.with_name(f".{out.name}.{os.getpid()}")
    log.info("writing %s from %s", out, checkpoint)
    try:
        export_gguf(checkpoint, tmp, float_type)
    except ExportError as e:
        tmp.unlink(missing_ok=True)
        raise UnsupportedVariantError(str(e)) from e
    _publish(tmp, out, made_from, started)
    return out


def quantised_artifact(source: Path, out_dir: Path, file_type: str, threads: int, timeout_s: float) -> Path:
    """``source`` (a float GGUF) quantised to ``file_type`` by llama.cpp, in a child process."""
    llama_cpp = _llama_cpp()
    out = out_dir / f"{file_type}.gguf"
    made_from = {"source_sha256": json.loads(source.with_suffix(".json").read_text())["sha256"],
                 "llama_cpp_python": llama_cpp.__version__}
    if fresh(out, out.with_suffix(".json"), made_from):
        return out
    started, tmp = time.perf_counter(), out.with_name(f".{out.name}.{os.getpid()}")
    log.info("quantising %s to %s with llama.cpp", source, file_type)
    try:
        done = subprocess.run([sys.executable, "-m", __name__, "quantize", str(source), str(tmp), file_type,
                               str(threads)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp's quantiser ran past engine.quantize_timeout_s={timeout_s} for {file_type}")
    tail = " ".join((done.stderr or done.stdout).split()[-40:])
    if done.returncode < 0:  # killed by a signal: the native code crashed
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp's quantiser crashed (signal {-done.returncode}) on {file_type}: {tail}")
    if done.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise UnsupportedVariantError(f"llama.cpp {llama_cpp.__version__} does not quantise this model to "
                                      f"{file_type} (llama_model_quantize returned {done.returncode}): {tail}")
    _publish(tmp, out, made_from, started)
    return out


def _quantize_main(source: str, out: str, file_type: str, threads: str) -> int:
    llama_cpp = _llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = file_types()[file_type]
    params.nthread = int(threads)
    return int(llama_cpp.llama_model_quantize(source.encode(), out.encode(), params))


@dataclass(frozen=True)
class GGUFContents:
    tensor_types: dict[str, int]  # type -> tensors, most common first
    weights_bytes: int  # every tensor's bytes
    matrix_bits_per_weight: float  # over the 2-D tensors (the ones a quantisation type applies to)


def read_contents(path: Path) -> GGUFContents:
    import gguf

    reader = gguf.GGUFReader(str(path))
    matrices = [t for t in reader.tensors if len(t.shape) == 2]
    bits = 8 * sum(int(t.n_bytes) for t in matrices) / sum(int(t.n_elements) for t in matrices)
    return GGUFContents(read_header(path, reader).tensor_types, sum(int(t.n_bytes) for t in reader.tensors), bits)


class LlamaCppRunner:
    """One GGUF file opened by llama-cpp-python: a scoring context (logits for every position) and a
    decoding context (logits for the last), one open at a time so memory holds one KV cache."""

    def __init__(self, path: Path, threads: int, score_ctx: int, decode_ctx: int):
        self.llama_cpp = _llama_cpp()
        self.path, self.threads = path, threads
        self.sizes = {"score": score_ctx, "decode": decode_ctx}
        self._mode: str | None = None
        self._llm = None

    def _open(self, mode: str):
        if self._mode != mode:
            self.close()
            n = self.sizes[mode]
            self._llm = self.llama_cpp.Llama(str(self.path), n_ctx=n, n_batch=n, n_ubatch=n, n_threads=self.threads,
                                             n_threads_batch=self.threads, logits_all=mode == "score", verbose=False)
            self._mode = mode
        return self._llm

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
        self._llm, self._mode = None, None

    @property
    def n_vocab(self) -> int:
        return self._open("score").n_vocab()

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """[batch, length] -> [batch, length, vocab]: each row from an empty cache."""
        llm = self._open("score")
        rows = []
        for row in ids.tolist():
            llm.reset()
            llm.eval(row)
            rows.append(torch.from_numpy(np.array(llm.scores[: len(row)], dtype=np.float32)))
        return torch.stack(rows)

    def bos_added(self) -> int | None:
        """The BOS token's id when the file's vocabulary adds one to every sequence, else None."""
        llm, lc = self._open("score"), self.llama_cpp
        return llm.token_bos() if lc.llama_vocab_get_add_bos(lc.llama_model_get_vocab(llm.model)) else None

    def tokenize(self, text: str) -> list[int]:
        return self._open("score").tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def request(self, ids: torch.Tensor, mask: torch.Tensor, new_tokens: int,
                stamps: TokenTimestamps) -> tuple[Request, torch.Tensor]:
        lc = self.llama_cpp
        llm = self._open("decode")
        vocab, eos = llm.n_vocab(), llm.token_eos()
        llm.reset()
        lc.llama_perf_context_reset(llm.ctx)
        tokens: list[int] = []
        stamps.start()
        llm.eval(ids[0].tolist())
        for i in range(new_tokens):
            logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))
            if 0 <= eos < vocab:
                logits[eos] = -np.inf  # the buffer is rewritten by the next eval
            tokens.append(int(logits.argmax()))
            stamps.marks.append(stamps.mark())
            if i < new_tokens - 1:
                llm.eval([tokens[-1]])
        perf = lc.llama_perf_context(llm.ctx)
        steps = stamps.intervals_ms()
        own = perf.t_eval_ms / perf.n_eval if perf.n_eval == new_tokens - 1 else None
        return Request(steps[0], steps[1:], own), torch.tensor([tokens])


def _artifact(model_cfg, variant_cfg, checkpoint: Path, engine_cfg, threads: int) -> tuple[Path, str]:
    """The GGUF file this point measures and its llama.cpp file type, made now if missing or stale."""
    out_dir = Path(engine_cfg.artifact_dir) / model_cfg.name
    file_type = variant_cfg.method
    if variant_cfg.kind == "baseline":
        file_type = DTYPE_FILE_TYPE[variant_cfg.dtype]
        if file_type in FLOAT_TYPES:
            return float_artifact(checkpoint, out_dir, file_type), file_type
    elif file_type == "shipped":
        path = locate(model_cfg).path
        return path, "shipped " + ", ".join(read_header(path).tensor_types)
    source = float_artifact(checkpoint, out_dir, "F32")
    return quantised_artifact(source, out_dir, file_type, threads, engine_cfg.quantize_timeout_s), file_type


@dataclass
class Artifact:
    """The GGUF file a point measures, described: what its record's engine and variant blocks say."""
    path: Path
    checkpoint: Path  # the transformers checkpoint it was made from (tokenizer, config)
    contents: GGUFContents
    info: EngineInfo
    variant: VariantInfo


def prepare_artifact(model_cfg, variant_cfg, engine_cfg, offline: bool | None = None) -> Artifact:
    """The point's GGUF file, made now if missing or stale, with its engine and variant descriptions."""
    from harness.models import checkpoint_dir

    llama_cpp = _llama_cpp()
    started = time.perf_counter()
    checkpoint = checkpoint_dir(model_cfg, offline)
    threads = engine_cfg.threads or torch.get_num_threads()
    path, file_type = _artifact(model_cfg, variant_cfg, checkpoint, engine_cfg, threads)
    prepared_s = time.perf_counter() - started
    contents = read_contents(path)
    side = path.with_suffix(".json")
    sha = json.loads(side.read_text())["sha256"] if side.exists() else _sha256(path)
    info = EngineInfo(name="llamacpp", version=llama_cpp.__version__,
                      build=llama_cpp.llama_print_system_info().decode().strip(), artifact=str(path),
                      artifact_bytes=path.stat().st_size, artifact_sha256=sha,
                      file_type=file_type, tensor_types=contents.tensor_types, threads=threads,
                      prepared_s=round(prepared_s, 3))
    variant = VariantInfo(name=variant_cfg.name, kind=variant_cfg.kind, dtype=variant_cfg.dtype,
                          method=file_type, library="llama.cpp (llama-cpp-python)",
                          library_version=llama_cpp.__version__,
                          weight_bits=round(contents.matrix_bits_per_weight, 4))
    return Artifact(path, checkpoint, contents, info, variant)


def prepare(point: EnginePoint, device: torch.device) -> Prepared:
    """The point's model as llama.cpp runs it (on the CPU, whatever ``device``), with its variant's description."""
    from transformers import AutoConfig, AutoTokenizer

    art = prepare_artifact(point.model, point.variant, point.engine, point.offline)
    tokenizer = AutoTokenizer.from_pretrained(str(art.checkpoint))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    runner = LlamaCppRunner(art.path, art.info.threads, point.context_length, point.decode_length)
    decoder = Decoder(runner.request, "llama-cpp-python Llama.eval greedy loop with the KV cache, one timestamp "
                      "per token; llama.cpp's perf counters read per request", max_batch=1,
                      why_max_batch="llama-cpp-python's Llama decodes one sequence (batched serving is the "
                      "server scenario's)")
    target = EngineModel(logits=runner.logits, decoder=decoder, tokenizer=tokenizer, device=torch.device("cpu"),
                         vocab_size=runner.n_vocab, weights_bytes=art.contents.weights_bytes,
                         kv_element_bytes=KV_ELEMENT_BYTES, config=AutoConfig.from_pretrained(str(art.checkpoint)),
                         info=art.info, max_length=point.context_length, close=runner.close)
    return Prepared(target, art.variant, str(art.checkpoint.resolve()), card_of(art.checkpoint))


def llama_cpp_python_server(gguf: Path, port: int, threads: int, n_ctx: int, api_model: str) -> list[str]:
    """llama-cpp-python's OpenAI-compatible server for one GGUF file. It serves one request at a time;
    by default a new request *interrupts* the one streaming (its stream ends early), so that is turned
    off: requests queue."""
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", api_model,
            "--host", HOST, "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--n_ctx", str(n_ctx), "--n_batch", str(min(n_ctx, 512)), "--interrupt_requests", "False",
            "--verbose", "False"]


def llama_server(binary: Path, gguf: Path, port: int, threads: int, n_ctx: int, api_model: str,
                 parallel: int) -> list[str]:
    """llama.cpp's own server (tools/server) for one GGUF file: ``parallel`` slots decoded together
    (continuous batching, its default), each with ``n_ctx`` tokens of context (``-c`` is the slots' total),
    prompt caching on (its default; the serving scenarios start it afresh per level and draw each level's own
    prompts, so no level is served from an earlier one's cache)."""
    return [str(binary), "--model", str(gguf), "--alias", api_model, "--host", HOST, "--port", str(port),
            "--threads", str(threads), "--threads-batch", str(threads), "--ctx-size", str(n_ctx * parallel),
            "--parallel", str(parallel), "--no-webui"]


def serve(point: EnginePoint, api_model: str) -> Served:
    """The server ``engine.server`` names on the point's GGUF file (each request's context: point.context_length)."""
    engine = point.engine
    if engine.server == "llama-server":
        from harness.engines import llamacpp_tools

        binary = llamacpp_tools.tool("llama-server")  # before any file is made: a missing build says so first
        art = prepare_artifact(point.model, point.variant, engine, point.offline)
        command = lambda port: llama_server(binary, art.path, port, art.info.threads, point.context_length,  # noqa: E731
                                            api_model, engine.parallel)
        info = dataclasses.replace(art.info, version=f"llama-server {llamacpp_tools.version(binary)}")
    else:
        art = prepare_artifact(point.model, point.variant, engine, point.offline)
        command = lambda port: llama_cpp_python_server(art.path, port, art.info.threads, point.context_length,  # noqa: E731
                                                       api_model)
        info = dataclasses.replace(art.info, version=f"llama-cpp-python server {art.info.version}")
    return Served(command, art.checkpoint, art.variant, info, card_of(art.checkpoint))


if __name__ == "__main__":  # the quantiser's child process: python -m harness.engines.llamacpp quantize ...
    if len(sys.argv) != 6 or sys.argv[1] != "quantize":
        sys.exit("usage: python -m harness.engines.llamacpp quantize SOURCE OUT TYPE THREADS")
    sys.exit(_quantize_main(*sys.argv[2:]))
