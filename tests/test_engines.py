"""Engines: llama.cpp runs the same model on the same token ids, and its points are judged against
the transformers fp32 reference like any variant.

The conversion tests compare next-token distributions position by position (mean KL below 1e-4 nats,
same top token on > 99.9% of positions) and tokenisation of the same text; the point tests run real
llama.cpp quantisations through `meekbench run` and check that KL orders as precision does.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.engines import llamacpp as L
from harness.engines.gguf_export import export_gguf
from harness.results.store import read_record, run_dir
from harness.run import run_point

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: MEEKBENCH_LLAMACPP=1 bash scripts/setup.sh "
                    "builds it (scripts/test.sh does)")


def _windows(ids: list[int], bos: int, length: int, count: int) -> torch.Tensor:
    return torch.tensor([[bos] + ids[i * (length - 1):(i + 1) * (length - 1)] for i in range(count)])


def _agreement(checkpoint: Path, gguf: Path, text: str, length: int,
               count: int) -> tuple[list[tuple[str, str]], float, float]:
    """(the spans where llama.cpp tokenises the text otherwise, as (transformers text, llama.cpp text);
    mean KL(transformers || llama.cpp) nats on the same ids; same-top-token share)."""
    import difflib

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    runner = L.LlamaCppRunner(gguf, threads=torch.get_num_threads(), score_ctx=length, decode_ctx=64)
    try:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        theirs = runner.tokenize(text)
        spans = [(tok.decode(ids[i:j]), tok.decode(theirs[k:m])) for op, i, j, k, m in
                 difflib.SequenceMatcher(None, ids, theirs, autojunk=False).get_opcodes() if op != "equal"]
        windows = _windows(ids, tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id, length, count)
        with torch.no_grad():
            ref = model(input_ids=windows).logits.double().log_softmax(-1)
        got = runner.logits(windows).double().log_softmax(-1)
    finally:
        runner.close()
    kl = (ref.exp() * (ref - got)).sum(-1)
    return spans, float(kl.mean()), float((ref.argmax(-1) == got.argmax(-1)).double().mean())


def test_tiny_model_as_f32_gguf_gives_transformers_distributions(models_dir, tmp_path):
    """The tiny family's byte-level BPE is written by our own writer (llama.cpp's converter refuses it)."""
    checkpoint = models_dir / "tiny" / "tiny-m"
    export_gguf(checkpoint, tmp_path / "F32.gguf")
    text = (models_dir / "tiny" / "data" / "heldout.txt").read_text(encoding="utf-8")[:40_000]
    spans, kl, same_top = _agreement(checkpoint, tmp_path / "F32.gguf", text, 128, 64)
    assert not spans, f"llama.cpp tokenises the held-out text otherwise: {spans[:5]}"
    assert kl < 1e-4 and same_top > 0.999, (kl, same_top)


def test_a_checkpoint_the_writer_does_not_map_is_refused_by_name(models_dir, tmp_path):
    from harness.engines.gguf_export import ExportError

    broken = tmp_path / "qwen"
    broken.mkdir()
    config = json.loads((models_dir / "tiny" / "tiny-s" / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(config | {"model_type": "qwen2"}))
    with pytest.raises(ExportError, match="model_type='qwen2'"):
        export_gguf(broken, tmp_path / "out.gguf")


@pytest.fixture(scope="module")
def gguf_points(models_dir, tmp_path_factory):
    """tiny-m's transformers fp32 reference, then llama.cpp F32 and three quantisations of it."""
    from tests.conftest import compose_config

    results = tmp_path_factory.mktemp("results")

    def run(*overrides: str):
        return run_point(compose_config("run", [f"models_dir={models_dir}", f"results_dir={results}", "bench=quick",
                                                "quality.max_bytes=20000", "model=tiny-m",
                                                # in this process, so tests can stand in for its child processes
                                                # (tests/test_isolation.py runs the isolated path)
                                                "engine.isolate=false", *overrides]))

    points = {"fp32": run("variant=fp32")}
    for variant in ("fp32", "gguf-q8_0", "gguf-q5_k_m", "gguf-q4_0"):
        points[f"llamacpp-{variant}"] = run("engine=llamacpp", f"variant={variant}")
    # a type llama.cpp knows with no fallback for rows that are no multiple of its block (tiny-m's are 96 wide)
    points["refused"] = run("engine=llamacpp", "variant=gguf-q4_0", "variant.name=gguf-q1_0", "variant.method=Q1_0")
    return points, run


@pytest.mark.slow  # points through the engine: the fast tier keeps its conversion tests
def test_llamacpp_points_are_judged_against_the_transformers_reference(gguf_points):
    points, _ = gguf_points
    for name, r in points.items():
        assert name == "refused" or r.status == "ok", (name, r.error)
    base = points["fp32"]
    assert base.engine.name == "transformers" and base.fidelity is None  # the reference itself
    f32 = points["llamacpp-fp32"]
    assert f32.engine.name == "llamacpp" and f32.engine.tensor_types == {"F32": f32.engine.tensor_types["F32"]}
    assert f32.point_key != base.point_key and "llamacpp-fp32" in f32.run_id
    assert f32.fidelity.kl_mean_nats < 1e-4 and f32.fidelity.same_top_rate > 0.999
    assert f32.quality.heldout_loss_nats == pytest.approx(base.quality.heldout_loss_nats, abs=1e-4)
    kl = {v: points[f"llamacpp-{v}"].fidelity.kl_mean_nats for v in ("gguf-q8_0", "gguf-q5_k_m", "gguf-q4_0")}
    assert kl["gguf-q8_0"] < kl["gguf-q5_k_m"] < kl["gguf-q4_0"], kl  # KL orders as precision does
    bits = [points[f"llamacpp-{v}"].variant.weight_bits for v in ("fp32", "gguf-q8_0", "gguf-q5_k_m", "gguf-q4_0")]
    assert bits == sorted(bits, reverse=True) and bits[0] == 32, bits
    # tiny-m's rows (96 wide) are no multiple of 256: llama.cpp writes Q5_K_M's matrices in a fallback type
    assert "Q5_K" not in points["llamacpp-gguf-q5_k_m"].engine.tensor_types
    q8 = points["llamacpp-gguf-q8_0"]
    assert q8.engine.artifact_bytes == Path(q8.engine.artifact).stat().st_size < f32.engine.artifact_bytes
    assert q8.memory.weights_bytes < f32.memory.weights_bytes
    head = q8.latency.scenarios[0]
    # the harness's per-token window holds llama.cpp's own decode time, plus the Python loop around it
    assert head.engine_tpot_ms is not None and head.tpot_over_engine > 0.98
    assert any(flag in q8.engine.build for flag in ("AVX", "NEON")), q8.engine.build  # the build's own flags


@pytest.mark.slow  # points through the engine: the fast tier keeps its conversion tests
def test_a_file_type_llama_cpp_refuses_is_an_unsupported_record_with_its_reason(gguf_points):
    refused = gguf_points[0]["refused"]
    assert refused.status == "unsupported" and "Q1_0" in refused.error, refused.error
    assert "no tensor type fallback" in refused.error  # llama.cpp's own reason
    assert read_record(run_dir(refused.config["results_dir"], refused.run_id) / "record.json").status == "unsupported"


@pytest.mark.slow  # points through the engine: the fast tier keeps its conversion tests
def test_a_native_crash_of_the_quantiser_is_a_failed_record(gguf_points, monkeypatch):
    """The quantiser runs in a child process: a signal there (simulated) is data, not the sweep's end."""
    real = subprocess.run
    monkeypatch.setattr(L.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, -11, "", "boom")
                        if "quantize" in cmd else real(cmd, **kw))
    crashed = gguf_points[1]("engine=llamacpp", "variant=gguf-q6_k")
    assert crashed.status == "failed" and "signal 11" in crashed.error, crashed.error


@pytest.mark.slow  # points through the engine: the fast tier keeps its conversion tests
def test_batched_requests_are_unsupported_scenarios_not_failures(gguf_points):
    r = gguf_points[1]("engine=llamacpp", "variant=gguf-q8_0", "bench.batch_sizes=[1,2]")
    assert r.status == "ok"
    statuses = {sc.batch_size: sc.status for sc in r.latency.scenarios}
    assert statuses == {1: "ok", 2: "unsupported"}


@pytest.mark.slow
def test_smollm2_as_f32_gguf_gives_transformers_distributions(models_dir, tmp_path):
    """The real model: its tokenizer metadata is copied from the GGUF file it was converted from."""
    from harness.models.gguf_checkpoint import ensure_checkpoint
    from tests.conftest import compose_config
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_object(compose_config("run", [f"models_dir={models_dir}",
                                                     "model=smollm2-135m-instruct"]).model)
    checkpoint = ensure_checkpoint(cfg)
    export_gguf(checkpoint, tmp_path / "F32.gguf")
    text = (models_dir / "tiny" / "data" / "heldout.txt").read_text(encoding="utf-8")
    spans, kl, same_top = _agreement(checkpoint, tmp_path / "F32.gguf", text, 128, 16)
    assert kl < 1e-4, kl
    # llama.cpp's "smollm" pre-tokenizer splits a run of whitespace before a digit otherwise than
    # transformers' (once in the 21,469 tokens of the held-out text: "\n " + " " against "\n  "); every
    # other token is the same, and each differing span is the same whitespace text
    assert len(spans) <= 3 and all(a == b and not a.strip() for a, b in spans), spans
    # 2032 positions: one flip of a near tie is 0.05%; llama.cpp sums in another order than torch
    assert same_top > 0.995, same_top
    print(f"SmolLM2-135M F32 GGUF vs transformers: KL {kl:.3g} nats, same top {same_top:.4%}")


@pytest.mark.slow
def test_smollm2_quantisations_order_by_precision(models_dir, tmp_path):
    """On the real model every matrix row is a multiple of 256, so the k-quants are what they say."""
    from tests.conftest import compose_config

    def run(*overrides: str):
        return run_point(compose_config("run", [f"models_dir={models_dir}", f"results_dir={tmp_path}", "bench=quick",
                                                "quality.max_bytes=10000", "model=smollm2-135m-instruct",
                                                *overrides]))

    assert run("variant=fp32").status == "ok"
    out = {v: run("engine=llamacpp", f"variant={v}") for v in ("gguf-q8_0", "gguf-q4_k_m", "gguf-q4_0", "gguf-shipped")}
    for v, r in out.items():
        assert r.status == "ok", (v, r.error)
        print(v, r.engine.tensor_types, f"KL {r.fidelity.kl_mean_nats:.4g}", f"top {r.fidelity.same_top_rate:.4f}",
              f"loss {r.quality.heldout_loss_nats:.4f}", f"TPOT {r.latency.tpot_ms.median:.3f} ms",
              f"harness/engine {r.latency.scenarios[0].tpot_over_engine:.3f}")
    kl = {v: r.fidelity.kl_mean_nats for v, r in out.items()}
    assert kl["gguf-q8_0"] < kl["gguf-q4_k_m"] < kl["gguf-q4_0"], kl
    assert "Q4_K" in out["gguf-q4_k_m"].engine.tensor_types
    # the shipped file is the checkpoint's own source: its fp32 baseline is these weights dequantised
    assert kl["gguf-shipped"] < kl["gguf-q4_0"] and np.isfinite(kl["gguf-shipped"])


@pytest.mark.slow  # two lm-eval runs (5 s): the fast tier keeps under 3 min
def test_engine_lm_scores_tasks_as_lm_evals_own_hflm(models_dir, run_cfg):
    """EngineLM (any engine's logits) against HFLM on the same transformers model: the same per-item
    log-likelihoods, so task accuracy means the same thing on every engine."""
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.measure.quality import hf_logits
    from harness.measure.tasks import evaluate_tasks

    suite = OmegaConf.to_object(run_cfg("eval=ci", "eval.limit=40")).eval
    checkpoint = models_dir / "tiny" / "tiny-s"
    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    hflm = evaluate_tasks(model, tok, suite)
    ours = evaluate_tasks(None, tok, suite, logits=hf_logits(model), max_length=model.config.max_position_embeddings)
    for task, score in hflm.tasks.items():
        for metric, value in score.metrics.items():
            if value is not None and not metric.endswith("_stderr"):
                assert ours.tasks[task].metrics[metric] == pytest.approx(value, rel=1e-4, abs=1e-5), (task, metric)
        a = [s["resps"] for s in hflm.samples[task]]
        b = [s["resps"] for s in ours.samples[task]]
        flat = lambda rs: np.array([float(x[0][0] if isinstance(x[0], (list, tuple)) else x[0]) for r in rs for x in r])
        assert np.allclose(flat(a), flat(b), atol=1e-3), task


@pytest.mark.slow  # points through the engine: the fast tier keeps its conversion tests
def test_llamacpp_points_score_tasks_paired_with_the_reference(gguf_points):
    r = gguf_points[1]("engine=llamacpp", "variant=fp32", "eval=ci", "eval.limit=40")
    assert r.status == "ok", r.error
    base = gguf_points[1]("variant=fp32", "eval=ci", "eval.limit=40")
    for task, score in base.quality.tasks.items():
        got = r.quality.tasks[task].metrics
        for metric in ("acc", "bits_per_byte"):
            if score.metrics.get(metric) is not None:
                assert got[metric] == pytest.approx(score.metrics[metric], abs=0.026), (task, metric)  # one item of 40
    assert r.quality.samples_path  # per-item logs for the report's paired comparison
