"""Generation latency: prefill (time to first token) and per-token decode times, in one pass.

A streamer stamps the clock each time ``generate()`` has produced a token: the first stamp
ends the prefill, each later one ends a decode step. (A streamer rather than a logits
processor: LogitsProcessorList inspects each processor's signature at every step, which cost
about 3% on the smallest CPU model; ``streamer.put`` is a plain call.) ``min_new_tokens = max_new_tokens``
makes every run decode the same count. On CUDA the stamps are CUDA events (read after a
synchronise); on CPU ``perf_counter``. Warm-up runs use the measured shapes.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import torch
from transformers import GenerationConfig
from transformers.generation.streamers import BaseStreamer

from harness.measure.energy import EnergyMeter
from harness.measure.stats import SampleStats, summarize

log = logging.getLogger(__name__)


class LatencyPlan(Protocol):
    """The scenarios to time and how long (harness.config.BenchConfig is one)."""
    prompt_tokens: Sequence[int]
    new_tokens: int
    batch_sizes: Sequence[int]
    warmup: int
    min_iterations: int
    min_seconds: float
    max_iterations: int
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
        self.marks = [self._mark()]

    def _mark(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.marks.append(self._mark())

    def end(self) -> None:
        pass

    def intervals_ms(self) -> list[float]:
        """Milliseconds between consecutive marks: [prefill, decode_1, ..., decode_{n-1}]."""
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        return [(b - a) * 1e3 for a, b in zip(self.marks, self.marks[1:])]


@dataclass
class LatencyScenario:
    prompt_tokens: int
    batch_size: int
    new_tokens: int
    status: str = "ok"  # ok | oom
    error: str | None = None
    iterations: int = 0
    prefill_ms: SampleStats | None = None
    decode_ms_per_token: SampleStats | None = None  # every decode step of every iteration
    decode_tokens_per_s: float | None = None  # batch_size / median step time
    generated_tokens: int = 0  # in the measured iterations (for energy per token)
    measured_s: float = 0.0
    energy_j: float | None = None  # over the measured iterations, where a counter exists
    energy_j_per_token: float | None = None


@dataclass
class LatencyResult:
    scenarios: list[LatencyScenario] = field(default_factory=list)
    timed_path: str = "generate() with a timestamping streamer, greedy, KV cache on"
    clock: str = ""
    threads: int = 0


def _generation_config(tokenizer, new_tokens: int) -> GenerationConfig:
    return GenerationConfig(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def _prompt(vocab: int, batch: int, length: int, seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=gen).to(device)


@torch.inference_mode()
def time_scenario(model, tokenizer, device: torch.device, prompt_tokens: int, batch_size: int,
                  new_tokens: int, warmup: int, min_iterations: int, min_seconds: float,
                  max_iterations: int, seed: int = 0, resamples: int = 2000,
                  meter: EnergyMeter | None = None) -> LatencyScenario:
    if new_tokens < 2:
        raise ValueError(f"bench.new_tokens={new_tokens}: need at least 2 to time a decode step")
    scenario = LatencyScenario(prompt_tokens, batch_size, new_tokens)
    ids = _prompt(len(tokenizer), batch_size, prompt_tokens, seed, device)
    mask = torch.ones_like(ids)
    gen_cfg = _generation_config(tokenizer, new_tokens)
    stamps = TokenTimestamps(device)
    prefill, decode = [], []
    try:
        for _ in range(warmup):
            stamps.start()
            model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg, streamer=stamps)
        if meter:
            meter.start()
        t0 = time.perf_counter()
        while (len(prefill) < min_iterations or time.perf_counter() - t0 < min_seconds) \
                and len(prefill) < max_iterations:
            stamps.start()
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg,
                                 streamer=stamps)
            steps = stamps.intervals_ms()
            if out.shape[1] - prompt_tokens != new_tokens or len(steps) != new_tokens:
                raise RuntimeError(f"generate produced {out.shape[1] - prompt_tokens} tokens, "
                                   f"{len(steps)} stamps; expected {new_tokens}")
            prefill.append(steps[0])
            decode.extend(steps[1:])
        scenario.measured_s = time.perf_counter() - t0
        reading = meter.stop() if meter else None
    except torch.OutOfMemoryError as e:
        scenario.status, scenario.error = "oom", f"out of memory at batch {batch_size} x prompt {prompt_tokens}: {e}"
        log.warning(scenario.error)
        return scenario
    scenario.iterations = len(prefill)
    scenario.prefill_ms = summarize(prefill, resamples, seed=seed)
    scenario.decode_ms_per_token = summarize(decode, resamples, seed=seed)
    scenario.decode_tokens_per_s = batch_size * 1e3 / scenario.decode_ms_per_token.median
    scenario.generated_tokens = scenario.iterations * batch_size * new_tokens
    if reading is not None and reading.joules is not None:
        scenario.energy_j = reading.joules
        scenario.energy_j_per_token = reading.joules / scenario.generated_tokens
    return scenario


def measure_latency(model, tokenizer, device: torch.device, bench: LatencyPlan,
                    meter: EnergyMeter | None = None) -> LatencyResult:
    result = LatencyResult(clock="cuda events" if device.type == "cuda" else "perf_counter",
                           threads=torch.get_num_threads())
    for batch in bench.batch_sizes:
        for prompt in bench.prompt_tokens:
            result.scenarios.append(time_scenario(
                model, tokenizer, device, prompt, batch, bench.new_tokens, bench.warmup,
                bench.min_iterations, bench.min_seconds, bench.max_iterations, bench.seed,
                bench.bootstrap_resamples, meter))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return result
