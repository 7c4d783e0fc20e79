"""A serving sweep's fidelity: what its server serves against the model's transformers fp32 reference (the
same reference file a single point of any engine is compared with), scored through the server's API on the
reference's held-out windows (harness/measure/served_fidelity.py); a server without prompt log-probabilities
by its greedy continuations against the fp32 model's. Once per sweep, on the first measured level's server
after its load (fidelity's requests first would leave the held-out text in the server's prefix cache, and
the load's prompts are cut from it)."""
from __future__ import annotations

import logging
import time

import torch

from harness.config import RunConfig
from harness.measure.fidelity import compare
from harness.measure.served_fidelity import (GREEDY_METHOD, METHOD, NoPromptLogprobs, greedy_agreement, probe,
                                             served_scores)
from harness.results import record as R
from harness.results import schema as S
from harness.scenarios.point import failure, heldout_text
from harness.scenarios.reference import load_reference, reference_file

log = logging.getLogger(__name__)

GREEDY_PROMPTS, GREEDY_NEW_TOKENS = 16, 32  # prompts of scenario.input_tokens; enough to tell 0.9 from 1.0


def served_fidelity(rc: RunConfig, device: torch.device, hardware_id: str, url: str, api_model: str, tokenizer,
                    run_id: str) -> S.ServedFidelity:
    """The served model's fidelity block, or one whose ``reason`` says why it has none (never raises: the
    level's own measurements are recorded either way)."""
    started = time.perf_counter()
    try:
        probe(url, api_model, tokenizer)
    except NoPromptLogprobs as e:
        log.info("%s: served fidelity: the server gives no prompt log-probabilities (%s): greedy agreement", run_id, e)
        return _greedy(rc, device, url, api_model, tokenizer, run_id, started, str(e))
    except Exception as e:
        return R.served_fidelity_block(METHOD, reason=failure(e).error)
    return _distributions(rc, device, hardware_id, url, api_model, tokenizer, run_id, started)


def _distributions(rc: RunConfig, device, hardware_id: str, url: str, api_model: str, tokenizer, run_id: str,
                   started: float) -> S.ServedFidelity:
    q = rc.quality
    try:
        heldout = heldout_text(rc)
        path = reference_file(rc, hardware_id, heldout)
        reference, why = load_reference(rc, device, heldout, path, run_id)
        if reference is None:
            return R.served_fidelity_block(METHOD, reason=why)
        log.info("%s: served fidelity: the held-out windows through %s's prompt log-probabilities (top %d)",
                 run_id, url, rc.compare.top_k)
        scores = served_scores(url, api_model, tokenizer, heldout, q.context_length, q.stride, q.max_bytes,
                               rc.compare.top_k, reference.vocab_size, rc.scenario.request_timeout_s)
        fidelity = compare(reference, scores.distributions, rc.compare)
    except Exception as e:  # a missing text, a reference of other settings, a server that went away
        return R.served_fidelity_block(METHOD, reason=failure(e).error)
    log.info("%s: served fidelity: KL >= %.4g nats [%.4g, %.4g], top-1 same %.4f, held-out loss %.4f nats over %d "
             "tokens", run_id, fidelity.kl_mean_nats, fidelity.kl_ci_low, fidelity.kl_ci_high, fidelity.same_top_rate,
             scores.loss_nats, scores.tokens)
    return R.served_fidelity_block(METHOD, reference=str(path), fidelity=fidelity, heldout_loss_nats=scores.loss_nats,
                                   bits_per_byte=scores.bits_per_byte, tokens=scores.tokens, requests=scores.requests,
                                   duration_s=round(time.perf_counter() - started, 3))


def _greedy(rc: RunConfig, device, url: str, api_model: str, tokenizer, run_id: str, started: float,
            no_logprobs: str) -> S.ServedFidelity:
    """Greedy agreement with the model's fp32 baseline (compare.baseline_variant), loaded here."""
    from harness.variants.baseline import dtype_baseline

    name = rc.compare.baseline_variant
    try:
        base = dtype_baseline(rc.model, name, device, rc.offline)
        model = base.loaded.model

        @torch.inference_mode()
        def reference_continue(prompt: str, new_tokens: int) -> str:
            """The reference's greedy continuation, EOS masked as llama-server's ignore_eos masks it (the prompt
            tokenized as the model's tokenizer does by default: with its BOS where it adds one)."""
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)
            out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

        ids = tokenizer(heldout_text(rc), add_special_tokens=False)["input_ids"]
        g = greedy_agreement(url, api_model, tokenizer, reference_continue, ids, GREEDY_PROMPTS, rc.scenario.input_tokens,
                             GREEDY_NEW_TOKENS, rc.scenario.seed, rc.scenario.request_timeout_s)
        low, high = g.interval(rc.compare.bootstrap_resamples, rc.compare.ci_level, rc.compare.seed)
    except Exception as e:
        return R.served_fidelity_block(GREEDY_METHOD, reason=f"{failure(e).error} (no prompt log-probabilities: "
                                                              f"{no_logprobs})")
    log.info("%s: served greedy agreement with %s: %.3f [%.3f, %.3f] of %d-token continuations over %d prompts",
             run_id, name, g.share(), low, high, g.new_tokens, len(g.matched))
    return R.served_fidelity_block(GREEDY_METHOD, reference=f"{rc.model.name} {name} (transformers)",
                                   greedy_matched_share=g.share(), greedy_ci_low=low, greedy_ci_high=high,
                                   greedy_prompts=len(g.matched), greedy_new_tokens=g.new_tokens,
                                   reason=f"no distributions: the server gives no prompt log-probabilities "
                                          f"({no_logprobs})",
                                   duration_s=round(time.perf_counter() - started, 3))
