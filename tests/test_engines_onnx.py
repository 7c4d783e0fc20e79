"""ONNX Runtime runs the same model on the same token ids, and its points are judged against the
transformers fp32 reference like any variant: the fp32 export gives transformers' next-token
distributions (mean KL below 1e-4 nats, same top token on > 99.9% of positions) and its greedy tokens;
int8 dynamic and int4 weight-only order by precision."""
from __future__ import annotations

import subprocess

import pytest
import torch

from harness.engines import onnxrt as O
from harness.run import run_point

pytest.importorskip("onnxruntime_genai", reason="onnxruntime-genai is not installed: bash scripts/setup.sh installs it")

MODEL = "tiny-s"  # heads of 16: ORT's GroupQueryAttention CPU kernel takes multiples of 16 (tiny-m's are 24)


@pytest.mark.slow  # an export by the model builder (8 s): the fast tier keeps under 3 min
def test_tiny_model_as_onnx_gives_transformers_distributions_and_tokens(models_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = models_dir / "tiny" / MODEL
    path, _ = O.artifact(checkpoint, tmp_path, "fp32", 32, 300)
    runner = O.OrtRunner(path, threads=torch.get_num_threads())
    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    ids = tok((models_dir / "tiny" / "data" / "heldout.txt").read_text()[:20_000], add_special_tokens=False)["input_ids"]
    windows = torch.tensor([ids[i * 127:(i + 1) * 127] for i in range(32)])
    with torch.no_grad():
        ref = model(input_ids=windows).logits.double().log_softmax(-1)
    got = runner.logits(windows).double().log_softmax(-1)
    kl = float((ref.exp() * (ref - got)).sum(-1).mean())
    same_top = float((ref.argmax(-1) == got.argmax(-1)).double().mean())
    assert kl < 1e-4 and same_top > 0.999, (kl, same_top)

    # the KV cache fed back step by step: teacher-forced over a window, each step's logits against transformers'
    import numpy as np

    logits, past = runner._run(windows[:1, :8].numpy(), 8, runner._empty(1))
    steps = [logits[0, -1]]
    for t in range(8, 64):
        logits, past = runner._run(windows[:1, t:t + 1].numpy(), t + 1, past)
        steps.append(logits[0, -1])
    cached = torch.from_numpy(np.stack(steps)).double().log_softmax(-1)
    kl_cached = float((ref[0, 7:64].exp() * (ref[0, 7:64] - cached)).sum(-1).mean())
    assert kl_cached < 1e-4, kl_cached

    prompt = windows[:1, :16]
    with torch.no_grad():
        want = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12,
                              min_new_tokens=12, do_sample=False)[:, 16:]
    from harness.measure.latency import TokenTimestamps

    request, tokens = runner.request(prompt, torch.ones_like(prompt), 12, TokenTimestamps(torch.device("cpu")))
    assert torch.equal(tokens, want) and len(request.itl_ms) == 11  # the KV-cache loop decodes what generate() does


@pytest.fixture(scope="module")
def onnx_points(models_dir, tmp_path_factory):
    from tests.conftest import compose_config

    results = tmp_path_factory.mktemp("results")

    def run(*overrides: str):
        return run_point(compose_config("run", [f"models_dir={models_dir}", f"results_dir={results}", "bench=quick",
                                                "quality.max_bytes=20000", f"model={MODEL}",
                                                # in this process, so tests can stand in for its child processes
                                                # (tests/test_isolation.py runs the isolated path)
                                                "engine.isolate=false", *overrides]))

    points = {"fp32": run("variant=fp32")}
    for variant in ("fp32", "ort-int8-dynamic", "ort-int4"):
        points[f"onnxruntime-{variant}"] = run("engine=onnxruntime", f"variant={variant}")
    return points, run


@pytest.mark.slow  # points through the engine: the fast tier keeps its conversion tests
def test_onnx_points_are_judged_against_the_transformers_reference(onnx_points):
    points, _ = onnx_points
    for name, r in points.items():
        assert r.status == "ok", (name, r.error)
    base, f32 = points["fp32"], points["onnxruntime-fp32"]
    assert f32.engine.name == "onnxruntime" and f32.point_key != base.point_key and "onnxruntime-fp32" in f32.run_id
    assert f32.fidelity.kl_mean_nats < 1e-4 and f32.fidelity.same_top_rate > 0.999
    assert f32.quality.heldout_loss_nats == pytest.approx(base.quality.heldout_loss_nats, abs=1e-4)
    i8, i4 = points["onnxruntime-ort-int8-dynamic"], points["onnxruntime-ort-int4"]
    assert f32.fidelity.kl_mean_nats < i8.fidelity.kl_mean_nats < i4.fidelity.kl_mean_nats  # KL orders as precision
    assert f32.variant.weight_bits == 32 and 8 < i8.variant.weight_bits < 8.5 and 4 < i4.variant.weight_bits <= 5
    assert set(f32.engine.tensor_types) == {"MatMul", "GroupQueryAttention"}
    assert "MatMulInteger" in i8.engine.tensor_types and "MatMulNBits" in i4.engine.tensor_types
    assert i4.memory.weights_bytes < i8.memory.weights_bytes < f32.memory.weights_bytes
    assert all(r.latency.tpot_ms.n > 0 for r in (f32, i8, i4))


@pytest.mark.slow  # points through the engine: the fast tier keeps its conversion tests
def test_a_model_whose_heads_the_kernel_refuses_is_an_unsupported_record(onnx_points):
    _, run = onnx_points
    r = run("engine=onnxruntime", "variant=fp32", "model=tiny-m")
    assert r.status == "unsupported" and "attention heads of 24" in r.error and "multiples of 16" in r.error


@pytest.mark.slow  # points through the engine: the fast tier keeps its conversion tests
@pytest.mark.parametrize("code, status", [(1, "unsupported"), (-11, "failed")])
def test_a_builder_refusal_is_unsupported_and_its_crash_failed(onnx_points, monkeypatch, code, status):
    _, run = onnx_points
    real = subprocess.run

    def builder(command, **kw):
        if "onnxruntime_genai.models.builder" in command:
            return subprocess.CompletedProcess(command, code, "", "NotImplementedError: The Foo model is not supported")
        return real(command, **kw)

    monkeypatch.setattr(O.subprocess, "run", builder)
    r = run("engine=onnxruntime", "variant=ort-int4", "engine.int4_block_size=16", "force=true")
    assert r.status == status and ("signal 11" in r.error if code < 0 else "The Foo model is not supported" in r.error)
