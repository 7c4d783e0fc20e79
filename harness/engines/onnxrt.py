"""ONNX Runtime: the model's transformers checkpoint exported by onnxruntime-genai's model builder
(``onnxruntime_genai.models.builder``: a decoder graph with ORT's GroupQueryAttention and a KV cache as
inputs and outputs), run through ``onnxruntime.InferenceSession`` on the same token ids as transformers.

Variants (``variant.kind=onnx`` beside the fp32 baseline):
- ``fp32``: the builder's fp32 graph;
- ``int8-dynamic``: that graph through ``onnxruntime.quantization.quantize_dynamic`` (int8 weights with a
  scale per output channel, activations quantised per call: MatMulInteger / DynamicQuantizeLinear);
- ``int4``: the builder's int4 weight-only graph (MatMulNBits, RTN, blocks of ``engine.int4_block_size``).

Artifacts live under ``engine.artifact_dir/<model>/<variant>/`` with a sidecar naming what they were
made from; a stale one is made again. The builder runs in a child process, so its failure (an
architecture it does not handle: ``unsupported``) or its crash (``failed``) never takes the sweep down.
Held-out scoring runs each window from an empty cache; decoding is a greedy loop of session runs with
the KV cache fed back (EOS masked, as ``min_new_tokens`` does in transformers), one timestamp per token.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from harness.blocks import EngineInfo
from harness.engines.base import EngineModel, EnginePoint, MissingBuildError, Prepared, card_of, fresh
from harness.io import sha256 as _sha256
from harness.measure.latency import Decoder, Request, TokenTimestamps
from harness.variants import UnsupportedVariantError, VariantInfo

log = logging.getLogger(__name__)

KV_ELEMENT_BYTES = 4  # the builder's CPU graphs keep the KV cache in float32
MATMULS = ("MatMul", "MatMulNBits", "MatMulInteger")  # the ops a weight quantisation changes


def _modules():
    try:
        import onnxruntime
        import onnxruntime_genai
    except Exception as e:
        raise MissingBuildError(f"onnxruntime / onnxruntime-genai are not usable here ({type(e).__name__}: {e}); "
                                "`bash scripts/setup.sh` installs them (meekbench[onnx])") from e
    return onnxruntime, onnxruntime_genai


def _made_from(checkpoint: Path, method: str, block_size: int) -> dict[str, Any]:
    ort, genai = _modules()
    files = sorted(checkpoint.glob("*.safetensors")) + [checkpoint / "config.json"]
    return {"checkpoint": [_sha256(f) for f in files if f.exists()], "method": method,
            "onnxruntime": ort.__version__, "onnxruntime_genai": genai.__version__,
            **({"int4_block_size": block_size} if method == "int4" else {}),
            **({"per_channel": True} if method == "int8-dynamic" else {})}


def _build(checkpoint: Path, out: Path, precision: str, block_size: int, timeout_s: float) -> None:
    """onnxruntime-genai's model builder in a child process: a failure says why, a crash names its signal."""
    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(checkpoint), "-o", str(out),
               "-p", precision, "-e", "cpu", "-c", str(out / ".cache")]
    if precision == "int4":
        command += ["--extra_options", f"int4_block_size={block_size}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"onnxruntime-genai's model builder ran past engine.build_timeout_s={timeout_s}")
    tail = " ".join((done.stderr or done.stdout).split()[-40:])
    if done.returncode < 0:
        raise RuntimeError(f"onnxruntime-genai's model builder crashed (signal {-done.returncode}): {tail}")
    if done.returncode != 0 or not (out / "model.onnx").exists():
        raise UnsupportedVariantError(f"onnxruntime-genai's model builder does not export this checkpoint to "
                                      f"{precision} (exit {done.returncode}): {tail}")


@contextlib.contextmanager
def _root_logger_quiet() -> Iterator[None]:
    """onnxruntime.quantization logs through the root logger: "Quantization parameters for tensor ... not
    specified" per tensor (INFO) and a pre-processing hint (WARNING), chatter at every export. Errors
    still pass (MEEKBENCH_LIBRARY_LOGS=1 lets everything through)."""
    root = logging.getLogger()
    level = root.level
    if os.environ.get("MEEKBENCH_LIBRARY_LOGS") != "1":
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def artifact(checkpoint: Path, out_dir: Path, method: str, block_size: int, timeout_s: float) -> tuple[Path, float]:
    """The ONNX model for ``method`` (fp32 | int8-dynamic | int4), made now if missing or stale;
    the seconds it took (0 when it was there)."""
    made_from = _made_from(checkpoint, method, block_size)
    out = out_dir / method
    if fresh(out / "model.onnx", out / "meekbench.json", made_from):
        return out / "model.onnx", 0.0
    started = time.perf_counter()
    tmp = out_dir / f".{method}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if method == "int8-dynamic":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            source, _ = artifact(checkpoint, out_dir, "fp32", block_size, timeout_s)
            tmp.mkdir(parents=True)
            for name in ("genai_config.json",):
                shutil.copy(source.parent / name, tmp / name)
            # one weight scale per output channel (SmolLM2-135M: KL 0.41 nats against 0.50 with one per tensor;
            # the rest is the activations' per-call int8 range, which outliers stretch)
            with _root_logger_quiet():  # the quantiser logs a line per tensor on the root logger
                quantize_dynamic(source, tmp / "model.onnx", weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul"], per_channel=True, use_external_data_format=True)
        else:
            _build(checkpoint, tmp, method, block_size, timeout_s)
        shutil.rmtree(tmp / ".cache", ignore_errors=True)
        (tmp / "meekbench.json").write_text(json.dumps({"made_from": made_from}, indent=1))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "model.onnx", time.perf_counter() - started


@dataclass(frozen=True)
class GraphContents:
    op_types: dict[str, int]  # the weight-bearing ops and attention, by type -> nodes
    weights_bytes: int  # every initializer's bytes
    matrix_bits_per_weight: float  # over the matmul weights (with their scales and zero points)


def read_contents(path: Path) -> GraphContents:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=True)
    inits = {t.name: t for t in model.graph.initializer}
    nbytes = {name: numpy_helper.to_array(t).nbytes for name, t in inits.items()}
    ops = Counter(n.op_type for n in model.graph.node if n.op_type in MATMULS or "Attention" in n.op_type
                  or n.op_type == "DynamicQuantizeLinear")
    weights = bits = 0
    for node in model.graph.node:
        if node.op_type not in MATMULS:
            continue
        held = [i for i in node.input if i in inits]
        if not held:
            continue  # a matmul of two activations
        if node.op_type == "MatMulNBits":
            attrs = {a.name: a.i for a in node.attribute}
            count = attrs["K"] * attrs["N"]
        else:
            count = int(np.prod(inits[held[0]].dims))
        weights += count
        bits += 8 * sum(nbytes[i] for i in held)
    return GraphContents(dict(ops.most_common()), sum(nbytes.values()), bits / weights if weights else 32.0)


class OrtRunner:
    """One ONNX model in an InferenceSession: logits for every position (from an empty cache) and a
    greedy decode with the KV cache fed back step by step."""

    def __init__(self, path: Path, threads: int):
        ort, _ = _modules()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        cfg = json.loads((path.parent / "genai_config.json").read_text())["model"]
        dec = cfg["decoder"]
        self.layers, self.kv_heads, self.head = dec["num_hidden_layers"], dec["num_key_value_heads"], dec["head_size"]
        self.vocab, self.eos, self.context = cfg["vocab_size"], cfg.get("eos_token_id"), cfg["context_length"]
        # past input -> the present output that feeds it on the next step, by the names the builder declares
        self.present_of = {dec["inputs"][f"past_{kind}_names"] % i: dec["outputs"][f"present_{kind}_names"] % i
                           for i in range(self.layers) for kind in ("key", "value")}
        self.output_names = ["logits", *self.present_of.values()]

    def _run(self, ids: np.ndarray, total: int, past: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits for ``ids`` after ``past``, and the cache to feed back next (by input name)."""
        feeds = {"input_ids": ids, "attention_mask": np.ones((ids.shape[0], total), dtype=np.int64), **past}
        out = dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
        return out["logits"], {name: out[present] for name, present in self.present_of.items()}

    def _empty(self, batch: int) -> dict[str, np.ndarray]:
        return {name: np.zeros((batch, self.kv_heads, 0, self.head), dtype=np.float32) for name in self.present_of}

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """[batch, length] -> [batch, length, vocab], each row from an empty cache."""
        rows = []
        for row in ids.numpy().astype(np.int64):
            logits, _ = self._run(row[None, :], len(row), self._empty(1))
            rows.append(torch.from_numpy(logits[0]))
        return torch.stack(rows)

    def request(self, ids: torch.Tensor, mask: torch.Tensor, new_tokens: int,
                stamps: TokenTimestamps) -> tuple[Request, torch.Tensor]:
        prompt = ids.numpy().astype(np.int64)
        tokens: list[int] = []
        stamps.start()
        logits, past = self._run(prompt, prompt.shape[1], self._empty(1))
        for i in range(new_tokens):
            logits = logits[0, -1].copy()
            if self.eos is not None and 0 <= self.eos < logits.shape[0]:
                logits[self.eos] = -np.inf
            tokens.append(int(logits.argmax()))
            stamps.marks.append(stamps.mark())
            if i < new_tokens - 1:
                logits, past = self._run(np.array([[tokens[-1]]], dtype=np.int64), prompt.shape[1] + len(tokens), past)
        steps = stamps.intervals_ms()
        return Request(steps[0], steps[1:]), torch.tensor([tokens])


def _check_heads(config: Any, name: str) -> None:
    """The builder's CPU graphs use ORT's GroupQueryAttention, whose CPU kernel takes head sizes that
    are multiples of 16 only (ONNX Runtime 1.31: "head_size shall be a multiple of 16")."""
    head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head % 16:
        raise UnsupportedVariantError(f"model {name} has attention heads of {head}: ONNX Runtime's GroupQueryAttention "
                                      "CPU kernel, which onnxruntime-genai's builder uses, takes head sizes that are "
                                      "multiples of 16 only")


METHOD_LABELS = {"fp32": "fp32 (onnxruntime-genai builder)",
                 "int8-dynamic": "int8 dynamic, per channel (onnxruntime.quantization.quantize_dynamic: MatMulInteger)",
                 "int4": "int4 weight-only (builder: MatMulNBits, RTN, block {block})"}


def prepare(point: EnginePoint, device: torch.device) -> Prepared:
    """The point's model as ONNX Runtime runs it (CPUExecutionProvider, whatever ``device``), with its
    variant's description."""
    from transformers import AutoConfig, AutoTokenizer

    from harness.models import checkpoint_dir

    model_cfg, variant_cfg, engine_cfg, offline = point.model, point.variant, point.engine, point.offline
    ort, genai = _modules()
    checkpoint = checkpoint_dir(model_cfg, offline)
    _check_heads(AutoConfig.from_pretrained(str(checkpoint)), model_cfg.name)
    method = "fp32" if variant_cfg.kind == "baseline" else variant_cfg.method
    threads = engine_cfg.threads or torch.get_num_threads()
    path, prepared_s = artifact(checkpoint, Path(engine_cfg.artifact_dir) / model_cfg.name, method,
                                engine_cfg.int4_block_size, engine_cfg.build_timeout_s)
    contents = read_contents(path)
    runner = OrtRunner(path, threads)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    data = path.with_name("model.onnx.data")
    label = METHOD_LABELS[method].format(block=engine_cfg.int4_block_size)
    info = EngineInfo(name="onnxruntime", version=ort.__version__,
                      build=f"CPUExecutionProvider; onnxruntime-genai {genai.__version__}", artifact=str(path),
                      artifact_bytes=path.stat().st_size + (data.stat().st_size if data.exists() else 0),
                      artifact_sha256=_sha256(data if data.exists() else path), file_type=label,
                      tensor_types=contents.op_types, threads=threads, prepared_s=round(prepared_s, 3))
    decoder = Decoder(runner.request, "onnxruntime InferenceSession greedy loop with the KV cache fed back, one "
                      "timestamp per token", max_batch=1, why_max_batch="the ONNX decode loop runs one sequence")
    target = EngineModel(logits=runner.logits, decoder=decoder, tokenizer=tokenizer, device=torch.device("cpu"),
                         vocab_size=runner.vocab, weights_bytes=contents.weights_bytes, kv_element_bytes=KV_ELEMENT_BYTES,
                         config=AutoConfig.from_pretrained(str(checkpoint)), info=info,
                         max_length=min(point.context_length, runner.context))
    variant = VariantInfo(name=variant_cfg.name, kind=variant_cfg.kind, dtype=variant_cfg.dtype, method=label,
                          library="onnxruntime", library_version=ort.__version__,
                          weight_bits=round(contents.matrix_bits_per_weight, 4))
    return Prepared(target, variant, str(checkpoint.resolve()), card_of(checkpoint))
