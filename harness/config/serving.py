"""How a point loads its target (the scenario axis: one request at a time, or an OpenAI-compatible
server under load) and the service-level objectives a serving level is judged by."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List, Optional

from harness.config.checks import (LENGTH_DISTRIBUTIONS, ON_FAILURE, ConfigValueError, _URL, _at_least, _each,
                                   _fraction, _one_of, _positive, _set)


@dataclass(frozen=True)
class ScenarioSpec:
    """A registered scenario: how a point loads its target."""
    name: str
    run: str  # "module:function": (RunConfig, resolved config dict) -> its record or records
    serving: bool  # loads an OpenAI-compatible server (one record per level of scenario.levels)


_SCENARIOS: dict[str, ScenarioSpec] = {}


def register_scenario(name: str, run: str, serving: bool) -> ScenarioSpec:
    """Register a scenario kind (``scenario.kind=<name>``); its implementation loads when a point runs."""
    spec = _SCENARIOS[name] = ScenarioSpec(name, run, serving)
    return spec


def scenario_specs() -> dict[str, ScenarioSpec]:
    return dict(_SCENARIOS)


def serving_scenarios() -> tuple[str, ...]:
    return tuple(n for n, s in _SCENARIOS.items() if s.serving)


# one request at a time in this process (bench/), or an OpenAI-compatible server under load: open-loop
# arrivals, N closed-loop clients, or every request at once (harness/measure/serving.py's load generator)
register_scenario("single", "harness.scenarios.single:run", serving=False)
for _kind in ("server", "concurrency", "offline"):
    register_scenario(_kind, "harness.scenarios.serving:run", serving=True)


@dataclass
class TargetConfig:
    """The OpenAI-compatible server a serving scenario loads: given by URL, or started by meekbench."""
    url: Optional[str] = None  # e.g. http://gpu-node-3:8000 (vLLM, SGLang, TGI, llama.cpp, Ollama); None: start one
    api_model: Optional[str] = None  # the name the server serves the model under; None: its hub id, else its name
    # a started server must answer its health check within this: vLLM compiles its model first (about 2 min on 2
    # cores with a cold compile cache; a busy machine doubles it)
    startup_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if _set(self.url) and not _URL.fullmatch(str(self.url)):
            raise ConfigValueError(f"scenario.target.url={self.url!r}; valid: http(s)://host[:port][/prefix], "
                                   "the server's base URL without /v1")
        _positive("scenario.target.startup_timeout_s", self.startup_timeout_s)


@dataclass(frozen=True)
class SloPreset:
    ttft_ms: float
    tpot_ms: float
    percentile: float
    source: str


_MLPERF = "MLPerf Inference's loadgen/mlperf.conf (mlcommons/inference)"
# named service-level objectives: p-th percentile TTFT and TPOT limits, each with where it comes from
SLO_PRESETS = {
    "mlperf-llama2-70b-server": SloPreset(2000.0, 200.0, 99.0, f"{_MLPERF}: llama2-70b.Server ttft/tpot_latency"),
    "mlperf-llama2-70b-interactive": SloPreset(450.0, 40.0, 99.0,
                                               f"{_MLPERF}: llama2-70b-interactive.Server ttft/tpot_latency"),
    "mlperf-llama3.1-8b-server": SloPreset(2000.0, 100.0, 99.0, f"{_MLPERF}: llama3_1-8b.Server ttft/tpot_latency"),
    "mlperf-llama3.1-8b-interactive": SloPreset(500.0, 30.0, 99.0,
                                                f"{_MLPERF}: llama3_1-8b-interactive.Server ttft/tpot_latency"),
}


@dataclass
class SearchConfig:
    """Find the highest load meeting an SLO (guidellm's sweep, vLLM's serve_sla): from scenario.levels[0],
    double the level while it meets, then bisect between the highest level that met and the lowest that
    did not. A level *meets* when the upper end of its percentile's 95% bootstrap interval (resampling
    requests; failed requests count as infinitely slow; the percentile as the report's judge takes it,
    the sample at or above its rank) is within both limits, *misses* when the point
    value is over either, and is *undecided* otherwise (treated as not meeting: the operating point is one
    that meets with confidence). harness/scenarios/slo_search.py."""
    enabled: bool = False
    slo: str = "mlperf-llama2-70b-server"  # one of SLO_PRESETS
    ttft_ms: Optional[float] = None  # set: this limit instead of the preset's (the search then names it "custom")
    tpot_ms: Optional[float] = None
    max_level: float = 64.0  # doubling stops here
    max_steps: int = 10  # levels measured at most
    resolution: float = 0.1  # server: bisection stops when the bracket's ratio is within 1 + this; concurrency: 1 client

    def __post_init__(self) -> None:
        _one_of("scenario.search.slo", self.slo, tuple(SLO_PRESETS))
        _positive("scenario.search.ttft_ms", self.ttft_ms)
        _positive("scenario.search.tpot_ms", self.tpot_ms)
        _positive("scenario.search.max_level", self.max_level)
        _at_least("scenario.search.max_steps", self.max_steps, 1)
        _positive("scenario.search.resolution", self.resolution)

    def limits(self) -> SloPreset:
        """The preset, with the limits set here in place of its own."""
        preset = SLO_PRESETS[self.slo]
        if self.ttft_ms is None and self.tpot_ms is None:
            return preset
        return SloPreset(self.ttft_ms or preset.ttft_ms, self.tpot_ms or preset.tpot_ms, preset.percentile,
                         f"custom: scenario.search.ttft_ms/tpot_ms over {self.slo} ({preset.source})")


@dataclass
class ScenarioConfig:
    """How a point loads its target (conf/scenario/). ``single``: one request at a time in this process,
    timed as bench/ says. The others load an OpenAI-compatible streaming server (docs/serving.md):
    ``server`` sends requests at Poisson (or gamma-bursty) arrivals at each rate of ``levels``,
    ``concurrency`` keeps ``levels`` clients each with one request in flight, ``offline`` sends every
    request at once. Each level is its own point and record."""
    kind: str = "single"
    levels: List[float] = field(default_factory=lambda: [1.0])  # server: requests/s; concurrency: clients
    burstiness: float = 1.0  # server: gamma shape of the gaps between arrivals (1: Poisson; < 1: burstier)
    input_tokens: int = 128  # prompt tokens per request (cut from the held-out text, seeded)
    output_tokens: int = 32  # tokens each request asks for (max_tokens, EOS ignored)
    length_distribution: str = "fixed"  # fixed | uniform: lengths in [(1 - length_range) L, (1 + length_range) L]
    length_range: float = 0.0
    min_requests: int = 32  # measured requests per level (after warm-up), at least...
    min_duration_s: float = 10.0  # ...and for at least this long (server: rate x duration requests)
    max_duration_s: float = 600.0  # a level stops here, whatever is still in flight (counted as errors)
    warmup_requests: int = 2  # one at a time before each level, not measured
    request_timeout_s: float = 120.0  # a request not finished by then is an error, not a hang
    on_failure: str = "continue"  # a level that fails: go on to the next level, or stop the sweep
    target: TargetConfig = field(default_factory=TargetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)  # enabled: levels found by an SLO, not listed
    runs: int = 1  # > 1: each level measured this many times, a started server started afresh for each run
    # the served model's fidelity against the fp32 reference through the server's prompt log-probabilities (vLLM's),
    # once per sweep on its first measured level's server, after the load (harness/scenarios/serving_fidelity.py)
    fidelity: bool = True
    bootstrap_resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        _one_of("scenario.kind", self.kind, tuple(_SCENARIOS))
        _each(_positive, "scenario.levels", self.levels)
        if self.kind == "concurrency":
            for i, level in enumerate(self.levels or []):
                if _set(level) and float(level) != int(level):
                    raise ConfigValueError(f"scenario.levels.{i}={level!r}; valid: whole numbers of clients")
        _positive("scenario.burstiness", self.burstiness)
        _at_least("scenario.input_tokens", self.input_tokens, 1)
        _at_least("scenario.output_tokens", self.output_tokens, 2, "time per output token needs a second token")
        _one_of("scenario.length_distribution", self.length_distribution, LENGTH_DISTRIBUTIONS)
        _fraction("scenario.length_range", self.length_range, closed=True)
        if _set(self.length_range) and self.length_range >= 1:
            raise ConfigValueError(f"scenario.length_range={self.length_range!r}; valid: 0 to below 1")
        _at_least("scenario.min_requests", self.min_requests, 1)
        _at_least("scenario.min_duration_s", self.min_duration_s, 0)
        _positive("scenario.max_duration_s", self.max_duration_s)
        if _set(self.max_duration_s) and _set(self.min_duration_s) and self.max_duration_s < self.min_duration_s:
            raise ConfigValueError(f"scenario.max_duration_s={self.max_duration_s!r}; valid: at least "
                                   f"scenario.min_duration_s ({self.min_duration_s})")
        _at_least("scenario.warmup_requests", self.warmup_requests, 0)
        _positive("scenario.request_timeout_s", self.request_timeout_s)
        _one_of("scenario.on_failure", self.on_failure, ON_FAILURE)
        _at_least("scenario.bootstrap_resamples", self.bootstrap_resamples, 1)
        _at_least("scenario.runs", self.runs, 1)
        if _set(self.search) and self.search.enabled and self.kind not in ("server", "concurrency"):
            raise ConfigValueError(f"scenario.search.enabled=true with scenario.kind={self.kind!r}; valid: a kind "
                                   "whose load has levels to search, server or concurrency")



@dataclass
class SloConfig:
    """Service-level objectives a serving level is judged by (analysis settings: changing them
    re-measures nothing). Defaults: MLPerf Inference's Llama-2-70B Server constraints, p99 TTFT
    2 s and p99 TPOT 200 ms."""
    ttft_ms: float = 2000.0
    tpot_ms: float = 200.0
    percentile: float = 99.0  # a level meets the SLOs when this percentile of each is within them (MLPerf)

    _key: ClassVar[str] = "judge.slo."  # where these keys sit in the composed config, for error messages

    def __post_init__(self) -> None:
        _positive(f"{self._key}ttft_ms", self.ttft_ms)
        _positive(f"{self._key}tpot_ms", self.tpot_ms)
        if _set(self.percentile) and not 0 < self.percentile <= 100:
            raise ConfigValueError(f"{self._key}percentile={self.percentile!r}; valid: above 0, at most 100")
