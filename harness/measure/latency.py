"""Generation latency under the serving ecosystem's definitions, by request, in interleaved rounds.

One *request* decodes exactly N greedy tokens per sequence through the engine's ``Decoder``: on
transformers one ``generate()`` call (``min_new_tokens = max_new_tokens``) whose streamer stamps the
clock each time a token is ready (a plain call per token; a logits processor cost about 3% more on
the smallest CPU model); on llama.cpp a loop of ``Llama.eval`` calls stamped the same way, with the
engine's own per-token time read from its perf counters beside it:

    TTFT  = first stamp - start                     (time to first token: the prefill)
    ITL   = every interval between consecutive stamps (N - 1 per request)
    e2e   = last stamp - start
    TPOT  = (e2e - TTFT) / (N - 1)                  (time per output token, per request; vLLM, MLPerf)
    output tokens/s = batch * N / e2e

Intervals resample whole requests, never pooled tokens: steps inside one ``generate()`` are
correlated, and a user re-running the point reproduces requests, not tokens. ``repeats`` rounds
run the scenario apart in time and record the between-round spread.

In each round the *arms* run interleaved, one request each in turn: the variant's
``generate()``, optionally a bare greedy KV-cache loop of ``model(...)`` calls on the same prompt
(so the overhead of ``generate()`` is a figure: generate / bare), and optionally the same model's
baseline, so a speed ratio compares requests made moments apart (paired by slot) instead of
blocks minutes apart. On CUDA the stamps are CUDA events (read after a synchronise); on CPU
``perf_counter``.
"""
from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from transformers import GenerationConfig
from transformers.generation.streamers import BaseStreamer

from harness.blocks import Latency, LatencyScenario, PairedRatio, Stats
from harness.measure.energy import EnergyMeter
from harness.measure.stats import CI_LEVEL, summarize, summarize_groups

log = logging.getLogger(__name__)

BY_REQUEST = "requests (one value per generate() call)"
BY_ROUND = "rounds, then requests within each round"


class LatencyPlan(Protocol):
    """The scenarios to time and how long (harness.config.BenchConfig is one)."""
    prompt_tokens: Sequence[int]
    new_tokens: int
    batch_sizes: Sequence[int]
    warmup: int
    repeats: int
    min_iterations: int
    min_seconds: float
    max_iterations: int
    target_rel_ci: float | None
    bare_loop: bool
    bootstrap_resamples: int
    seed: int


class TokenTimestamps(BaseStreamer):
    """Records when each generated token is ready (generate() first puts the prompt: skipped)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []
        self._prompt_seen = False

    def start(self) -> None:
        self._prompt_seen = False
        self.marks = [self.mark()]

    def mark(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.marks.append(self.mark())

    def end(self) -> None:
        pass

    def intervals_ms(self) -> list[float]:
        """Milliseconds between consecutive marks: [TTFT, ITL_1, ..., ITL_{N-1}]."""
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        return [(b - a) * 1e3 for a, b in zip(self.marks, self.marks[1:])]


@dataclass
class Request:
    """One timed request: TTFT and the inter-token intervals after it."""
    ttft_ms: float
    itl_ms: list[float]
    engine_tpot_ms: float | None = None  # the engine's own timing of the same decode steps, where it keeps one

    @property
    def e2e_ms(self) -> float:
        return self.ttft_ms + sum(self.itl_ms)

    @property
    def tpot_ms(self) -> float:
        return sum(self.itl_ms) / len(self.itl_ms)


def _generation_config(tokenizer, new_tokens: int) -> GenerationConfig:
    return GenerationConfig(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def _prompt(vocab: int, batch: int, length: int, seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=gen).to(device)


def generate_request(model, ids, mask, gen_cfg, stamps: TokenTimestamps) -> tuple[Request, torch.Tensor]:
    stamps.start()
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg, streamer=stamps)
    steps = stamps.intervals_ms()
    new = out[:, ids.shape[1]:]
    if new.shape[1] != gen_cfg.max_new_tokens or len(steps) != gen_cfg.max_new_tokens:
        raise RuntimeError(f"generate produced {new.shape[1]} tokens, {len(steps)} stamps; "
                           f"expected {gen_cfg.max_new_tokens}")
    return Request(steps[0], steps[1:]), new


def bare_request(model, ids, mask, new_tokens: int, eos_token_id: int | None,
                 stamps: TokenTimestamps) -> tuple[Request, torch.Tensor]:
    """Greedy decoding by direct ``model(...)`` calls with the KV cache: no generate() machinery.
    EOS is masked as ``min_new_tokens`` does in generate(), so both paths decode the same tokens."""
    def pick(logits: torch.Tensor) -> torch.Tensor:
        logits = logits[:, -1].float()
        if eos_token_id is not None:
            logits[:, eos_token_id] = float("-inf")
        return logits.argmax(-1, keepdim=True)

    # transformers 5.2x renamed the KV cache argument and output field past_key_values -> cache
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    stamps.start()
    out = model(input_ids=ids, attention_mask=mask, use_cache=True)
    token = pick(out.logits)
    stamps.marks.append(stamps.mark())
    tokens, past = [token], getattr(out, key)
    for _ in range(new_tokens - 1):
        mask = torch.cat([mask, torch.ones_like(token)], dim=1)
        out = model(input_ids=token, attention_mask=mask, use_cache=True, **{key: past})
        token, past = pick(out.logits), getattr(out, key)
        tokens.append(token)
        stamps.marks.append(stamps.mark())
    steps = stamps.intervals_ms()
    return Request(steps[0], steps[1:]), torch.cat(tokens, dim=1)


@dataclass
class Decoder:
    """How one engine decodes a timed request: exactly ``new_tokens`` greedy tokens per sequence,
    each stamped when ready, returning the request and the new token ids [batch, new_tokens]."""
    request: Callable[[torch.Tensor, torch.Tensor, int, TokenTimestamps], tuple[Request, torch.Tensor]]
    path: str  # what a request runs, in words (recorded)
    bare: Callable[[torch.Tensor, torch.Tensor, int, TokenTimestamps], tuple[Request, torch.Tensor]] | None = None
    max_batch: int | None = None  # the most sequences one request may hold; None: any
    why_max_batch: str = ""


def hf_decoder(model, tokenizer) -> Decoder:
    """transformers: generate() with a timestamping streamer, and the bare model() loop beside it."""
    def request(ids, mask, n, stamps):
        return generate_request(model, ids, mask, _generation_config(tokenizer, n), stamps)

    def bare(ids, mask, n, stamps):
        return bare_request(model, ids, mask, n, tokenizer.eos_token_id, stamps)

    return Decoder(request, "generate() with a timestamping streamer, greedy, KV cache on; "
                   "bare greedy KV-cache loop of model() calls beside it", bare=bare)


def _by_request(rounds: list[list[Request]], field_name: str, resamples: int, level: float,
                seed: int) -> Stats:
    """One value per request. With several rounds the interval resamples rounds and then requests
    inside each (rounds differ by more than requests inside one round do, as re-runs do)."""
    values = [[getattr(r, field_name) for r in rnd] for rnd in rounds]
    if len(values) == 1:
        return summarize(values[0], resamples, level, seed, BY_REQUEST)
    return summarize_groups(values, resamples, level, seed, unit=BY_ROUND, within=True)


def _tpot_half_width(requests: list[Request], resamples: int, seed: int) -> float:
    stats = summarize([r.tpot_ms for r in requests], resamples, seed=seed, unit=BY_REQUEST)
    return (stats.ci_high - stats.ci_low) / 2 / stats.median


def _ratio_ci(a: list[float], b: list[float], resamples: int, level: float, seed: int) -> tuple[float, float, float]:
    """median(a) / median(b) with a bootstrap that resamples the pairs (a[i], b[i]) together."""
    x, y = np.asarray(a), np.asarray(b)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    ratios = np.median(x[idx], axis=1) / np.median(y[idx], axis=1)
    alpha = (1 - level) / 2
    return float(np.median(x) / np.median(y)), float(np.quantile(ratios, alpha)), float(np.quantile(ratios, 1 - alpha))


@dataclass
class _Arm:
    name: str
    run: Callable[[], tuple[Request, torch.Tensor]]
    requests: list[list[Request]] = field(default_factory=list)  # per round


@torch.inference_mode()
def time_scenario(decoder: Decoder, vocab_size: int, device: torch.device, prompt_tokens: int, batch_size: int,
                  plan: LatencyPlan, meter: EnergyMeter | None = None, baseline: Decoder | None = None,
                  baseline_name: str = "baseline", level: float = CI_LEVEL) -> LatencyScenario:
    """Time one (prompt, batch) shape; ``baseline``, if given, is interleaved as a paired arm. ``plan``'s
    values are checked by its config (bench.new_tokens >= 2, bench.repeats >= 1)."""
    n = plan.new_tokens
    sc = LatencyScenario(prompt_tokens=prompt_tokens, batch_size=batch_size, new_tokens=n)
    if decoder.max_batch is not None and batch_size > decoder.max_batch:
        sc.status, sc.error = "unsupported", f"batch {batch_size}: {decoder.why_max_batch}"
        return sc
    ids = _prompt(vocab_size, batch_size, prompt_tokens, plan.seed, device)
    mask = torch.ones_like(ids)
    stamps = TokenTimestamps(device)
    joules = [0.0]

    def variant() -> tuple[Request, torch.Tensor]:
        if meter:
            meter.start()
        out = decoder.request(ids, mask, n, stamps)
        if meter:
            reading = meter.stop()
            joules[0] = None if reading.joules is None or joules[0] is None else joules[0] + reading.joules
        return out

    arms = [_Arm("generate", variant)]
    if plan.bare_loop and decoder.bare is not None:
        arms.append(_Arm("bare", lambda: decoder.bare(ids, mask, n, stamps)))
    if baseline is not None:
        arms.append(_Arm("baseline", lambda: baseline.request(ids, mask, n, stamps)))
    try:
        for _ in range(plan.warmup):
            for arm in arms:
                arm.run()
        joules[0] = 0.0  # the warm-up's energy is not the measurement's
        t_all = time.perf_counter()
        outputs = _run_rounds(arms, plan, sc.stop_reasons)
        sc.measured_s = time.perf_counter() - t_all
    except torch.OutOfMemoryError as e:
        sc.status, sc.error = "oom", f"out of memory at batch {batch_size} x prompt {prompt_tokens}: {e}"
        log.warning(sc.error)
        return sc
    _summarise_scenario(sc, arms, outputs, plan, level, baseline_name)
    if meter and joules[0] is not None:
        sc.energy_j = joules[0]
        sc.energy_j_per_token = joules[0] / sc.generated_tokens
    return sc


def _run_rounds(arms: list[_Arm], plan: LatencyPlan, stop_reasons: list[str]) -> dict[str, torch.Tensor]:
    """``plan.repeats`` rounds of the arms interleaved request by request, each round until its minimums
    (or its precision target) are met or its cap is reached; the last tokens each arm decoded."""
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(plan.repeats):
        for arm in arms:
            arm.requests.append([])
        t0, reason = time.perf_counter(), "max_iterations"
        while len(arms[0].requests[-1]) < plan.max_iterations:
            for arm in arms:
                request, outputs[arm.name] = arm.run()
                arm.requests[-1].append(request)
            done = len(arms[0].requests[-1])
            if done >= plan.min_iterations and time.perf_counter() - t0 >= plan.min_seconds:
                if plan.target_rel_ci is None:
                    reason = "min_iterations and min_seconds reached"
                    break
                pooled = [r for rnd in arms[0].requests for r in rnd]
                if len(pooled) >= 3 and _tpot_half_width(pooled, plan.bootstrap_resamples,
                                                         plan.seed) <= plan.target_rel_ci:
                    reason = f"TPOT interval half-width within target_rel_ci={plan.target_rel_ci}"
                    break
        stop_reasons.append(reason)
    return outputs


def _summarise_scenario(sc: LatencyScenario, arms: list[_Arm], outputs: dict[str, torch.Tensor],
                        plan: LatencyPlan, level: float, baseline_name: str) -> None:
    """The measured arm's statistics, the bare loop's beside it and the paired baseline's ratios."""
    res, seed, n, batch_size = plan.bootstrap_resamples, plan.seed, sc.new_tokens, sc.batch_size
    rounds = arms[0].requests
    reqs = [r for rnd in rounds for r in rnd]
    sc.requests, sc.rounds = len(reqs), len(rounds)
    sc.ttft_ms = _by_request(rounds, "ttft_ms", res, level, seed)
    sc.tpot_ms = _by_request(rounds, "tpot_ms", res, level, seed)
    sc.e2e_ms = _by_request(rounds, "e2e_ms", res, level, seed)
    sc.itl_ms = summarize_groups([r.itl_ms for r in reqs], res, level, seed, unit="requests")
    sc.output_tokens_per_s = batch_size * n * 1e3 / sc.e2e_ms.median
    sc.round_tpot_ms = [float(np.median([r.tpot_ms for r in rnd])) for rnd in rounds]
    if len(rounds) > 1:
        sc.round_spread = (max(sc.round_tpot_ms) - min(sc.round_tpot_ms)) / float(np.median(sc.round_tpot_ms))
    sc.generated_tokens = len(reqs) * batch_size * n
    if all(r.engine_tpot_ms is not None for r in reqs):
        sc.engine_tpot_ms = _by_request(rounds, "engine_tpot_ms", res, level, seed)
        sc.tpot_over_engine = sc.tpot_ms.median / sc.engine_tpot_ms.median
    for arm in arms[1:]:
        other = [r for rnd in arm.requests for r in rnd]
        if arm.name == "bare":
            sc.bare_tpot_ms = summarize([r.tpot_ms for r in other], res, level, seed, BY_REQUEST)
            sc.generate_over_bare = sc.tpot_ms.median / sc.bare_tpot_ms.median
            sc.bare_tokens_match = bool(torch.equal(outputs["generate"], outputs["bare"]))
            if not sc.bare_tokens_match:
                log.warning("bare loop and generate() decoded different tokens at batch %d x prompt %d",
                            batch_size, sc.prompt_tokens)
        else:
            sc.paired = _paired(reqs, other, rounds, arm.requests, baseline_name, res, level, seed)


def _paired(variant: list[Request], base: list[Request], v_rounds, b_rounds, name: str, resamples: int,
            level: float, seed: int) -> PairedRatio:
    tpot = _ratio_ci([r.tpot_ms for r in variant], [r.tpot_ms for r in base], resamples, level, seed)
    ttft = _ratio_ci([r.ttft_ms for r in variant], [r.ttft_ms for r in base], resamples, level, seed)
    per_round = [float(np.median([r.tpot_ms for r in v]) / np.median([r.tpot_ms for r in b]))
                 for v, b in zip(v_rounds, b_rounds)]
    return PairedRatio(baseline=name, pairs=len(variant), tpot_ratio=tpot[0], tpot_ci_low=tpot[1],
                       tpot_ci_high=tpot[2], ttft_ratio=ttft[0], ttft_ci_low=ttft[1], ttft_ci_high=ttft[2],
                       ci_level=level, baseline_tpot_ms=summarize([r.tpot_ms for r in base], resamples, level, seed, BY_REQUEST),
                       baseline_ttft_ms=summarize([r.ttft_ms for r in base], resamples, level, seed, BY_REQUEST),
                       round_tpot_ratios=per_round)


def measure_latency(decoder: Decoder, vocab_size: int, device: torch.device, bench: LatencyPlan,
                    meter: EnergyMeter | None = None, baseline: Decoder | None = None,
                    baseline_name: str | None = None, threads: int | None = None) -> Latency:
    """Every (batch, prompt) scenario; ``baseline_name`` says what ``baseline`` is, or why none is paired."""
    result = Latency(timed_path=decoder.path, clock="cuda events" if device.type == "cuda" else "perf_counter",
                           threads=threads or torch.get_num_threads(), paired_with=baseline_name)
    for batch in bench.batch_sizes:
        for prompt in bench.prompt_tokens:
            result.scenarios.append(time_scenario(decoder, vocab_size, device, prompt, batch, bench, meter, baseline,
                                                  baseline_name or "baseline"))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return result
