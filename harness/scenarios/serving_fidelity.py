"""A serving sweep's fidelity: what its server serves against the model's transformers fp32 reference (the
same reference file a single point of any engine is compared with), scored through the server's API on the
reference's held-out windows (harness/measure/served_fidelity.py). Once per sweep, on the first measured
level's server after its load (fidelity's requests first would leave the held-out text in the server's prefix
cache, and the load's prompts are cut from it)."""
from __future__ import annotations

import logging
import time

import torch

from harness.config import RunConfig
from harness.measure.fidelity import compare
from harness.measure.served_fidelity import METHOD, NoPromptLogprobs, served_scores
from harness.results import schema as S
from harness.scenarios.point import failure, heldout_text
from harness.scenarios.reference import load_reference, reference_file

log = logging.getLogger(__name__)


def served_fidelity(rc: RunConfig, device: torch.device, hardware_id: str, url: str, api_model: str, tokenizer,
                    run_id: str) -> S.ServedFidelity:
    """The served model's fidelity block, or one whose ``reason`` says why it has none (never raises: the
    level's own measurements are recorded either way)."""
    started = time.perf_counter()
    q = rc.quality
    try:
        heldout = heldout_text(rc)
        path = reference_file(rc, hardware_id, heldout)
        reference, why = load_reference(rc, device, heldout, path, run_id)
        if reference is None:
            return S.ServedFidelity(method=METHOD, reason=why)
        log.info("%s: served fidelity: the held-out windows through %s's prompt log-probabilities (top %d)",
                 run_id, url, rc.compare.top_k)
        scores = served_scores(url, api_model, tokenizer, heldout, q.context_length, q.stride, q.max_bytes,
                               rc.compare.top_k, reference.vocab_size, rc.scenario.request_timeout_s)
        fidelity = compare(reference, scores.distributions, rc.compare)
    except NoPromptLogprobs as e:
        return S.ServedFidelity(method=METHOD, reason=f"the server gives no prompt log-probabilities: {e}")
    except Exception as e:  # a missing text, a reference of other settings, a server that went away
        return S.ServedFidelity(method=METHOD, reason=failure(e).error)
    log.info("%s: served fidelity: KL >= %.4g nats [%.4g, %.4g], top-1 same %.4f, held-out loss %.4f nats over %d "
             "tokens", run_id, fidelity.kl_mean_nats, fidelity.kl_ci_low, fidelity.kl_ci_high, fidelity.same_top_rate,
             scores.loss_nats, scores.tokens)
    return S.ServedFidelity(method=METHOD, reference=str(path), fidelity=fidelity, heldout_loss_nats=scores.loss_nats,
                            bits_per_byte=scores.bits_per_byte, tokens=scores.tokens, requests=scores.requests,
                            duration_s=round(time.perf_counter() - started, 3))
