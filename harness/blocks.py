"""What a point measures, defined once: measurement returns these, and a record stores them as they are.

Each is a plain dataclass that pydantic validates inside a record (``RunRecord.latency`` is a
``Latency``), so a field measured is a field recorded, with no mirrored class to keep in step. A
leaf: it imports nothing of harness, so measure, engines, variants and results can all use it.

Units are in field names (_ms, _s, _bytes, _j, _nats). Fields a record may lack (written by an
older meekbench, or filled only by the record builder) have defaults; ``extra="forbid"`` refuses
a field nobody defined. Changing a field's meaning bumps ``schema.SCHEMA_VERSION``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import ConfigDict

_FORBID = ConfigDict(extra="forbid")


def _block(frozen: bool = False):
    """A keyword-only dataclass that pydantic validates strictly (unknown fields refused)."""
    def wrap(cls):
        cls.__pydantic_config__ = _FORBID
        return dataclass(kw_only=True, frozen=frozen)(cls)
    return wrap


@_block(frozen=True)
class Stats:
    """Raw samples with their summary: median with a bootstrap interval, tails, spread."""
    n: int
    median: float
    p90: float
    p99: float
    mean: float
    stdev: float
    cv: float  # stdev / mean
    ci_low: float  # bootstrap confidence interval of the median
    ci_high: float
    ci_level: float
    ci_resamples: str = "samples"  # what the bootstrap resampled (the independent unit)
    samples: list[float]  # raw, in measurement order, so a report can recompute everything
    percentile_method: Optional[str] = None  # how median, p90 and p99 interpolate (None: older records)


@_block()
class Probes:
    """Short measured probes of the machine, cached per hardware id in the results store."""
    device: str
    bandwidth_bytes_per_s: float  # median of tensor copies (read + write bytes / time)
    matmul_flops_per_s: float  # median of square matmuls (2 n^3 / time)
    matmul_dtype: str
    matmul_n: int
    copy_bytes: int
    samples_bandwidth: list[float] = field(default_factory=list)
    samples_matmul: list[float] = field(default_factory=list)
    measured_at: float = 0.0


@_block()
class Hardware:
    id: str  # stable hash of what identifies the machine's compute
    label: str  # human name of the target
    device: str
    hostname: str
    cpu_model: str
    cpu_cores_logical: int
    cpu_cores_physical: Optional[int] = None
    ram_bytes: int
    torch_threads: int
    gpu_name: Optional[str] = None
    gpu_count: int = 0
    gpu_memory_bytes: Optional[int] = None
    gpu_driver: Optional[str] = None
    cuda: Optional[str] = None
    probes: Optional[Probes] = None  # set by the record builder from the machine's cached probes


@_block()
class VariantInfo:
    """What a variant is once prepared (or, for a point that never got there, its config's view)."""
    name: str
    kind: str
    dtype: str
    method: Optional[str] = None
    library: Optional[str] = None
    library_version: Optional[str] = None
    weight_bits: Optional[float] = None
    options: dict[str, Any] = field(default_factory=dict)  # the variant's options as plain values
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a distilled student's card


@_block()
class EngineInfo:
    """What ran the point; absent in records written before engines were an axis (transformers)."""
    name: str
    version: Optional[str] = None
    build: Optional[str] = None  # the native build's flags, where it has any
    artifact: Optional[str] = None  # the file measured, when the engine runs one
    artifact_bytes: Optional[int] = None
    artifact_sha256: Optional[str] = None
    file_type: Optional[str] = None  # as asked (F32, Q4_K_M, shipped ...)
    tensor_types: dict[str, int] = field(default_factory=dict)  # the types actually written -> tensor count
    threads: Optional[int] = None
    prepared_s: Optional[float] = None  # conversion and quantisation time, when this point did them


@_block()
class TaskScore:
    metrics: dict[str, Optional[float]]  # e.g. acc, acc_stderr, bits_per_byte
    n_samples: Optional[int] = None
    n_shot: Optional[int] = None
    version: Optional[str] = None


@_block()
class Quality:
    """Held-out loss as measured; the record builder adds the point's lm-eval tasks."""
    heldout_loss_nats: Optional[float] = None  # mean negative log-likelihood per scored token
    bits_per_byte: Optional[float] = None
    heldout_tokens: Optional[int] = None  # tokens scored
    heldout_bytes: Optional[int] = None  # UTF-8 bytes those tokens cover
    context_length: Optional[int] = None
    stride: Optional[int] = None
    tasks: dict[str, TaskScore] = field(default_factory=dict)
    lm_eval_version: Optional[str] = None
    samples_path: Optional[str] = None  # per-sample log next to the record
    distributions_path: Optional[str] = None  # the held-out next-token distributions next to the record (.npz)
    distributions_settings: Optional[str] = None  # their settings' tag: two points compare when tags agree


@_block()
class PairedRatio:
    """Variant / baseline, from requests interleaved slot by slot in the same rounds of the point."""
    baseline: str
    pairs: int
    tpot_ratio: float  # median variant TPOT / median baseline TPOT
    tpot_ci_low: float  # bootstrap over pairs (the same slots for both)
    tpot_ci_high: float
    ttft_ratio: float
    ttft_ci_low: float
    ttft_ci_high: float
    ci_level: float
    baseline_tpot_ms: Stats
    baseline_ttft_ms: Stats
    round_tpot_ratios: list[float] = field(default_factory=list)


@_block()
class AcrossRuns:
    """One shape timed in several runs of the point (bench.runs): run 1 in the point's own process,
    runs 2..N each in a fresh one. Every Stats pools the runs' per-request samples (in run order;
    ``run_requests`` splits them) with the median's interval from a two-level bootstrap (runs, then
    requests inside each drawn run): the interval of what another run would read, where the
    scenario's own intervals describe one run only."""
    runs: int
    run_requests: list[int]  # requests each run measured (splits the pooled samples)
    run_tpot_ms: list[float]  # each run's median TPOT
    ttft_ms: Stats
    tpot_ms: Stats
    e2e_ms: Stats
    itl_ms: Optional[Stats] = None
    output_tokens_per_s: float  # batch * new tokens / pooled median e2e
    output_tokens_per_s_ci_low: float
    output_tokens_per_s_ci_high: float
    tpot_width_ratio: Optional[float] = None  # across-run / run 1's within-run TPOT interval width
    paired_tpot_ratio: Optional[float] = None  # geometric mean of the runs' paired ratios (variant / baseline TPOT)
    paired_tpot_ci_low: Optional[float] = None  # two-level bootstrap: runs, then pairs inside each
    paired_tpot_ci_high: Optional[float] = None
    run_tpot_ratios: list[float] = field(default_factory=list)  # each run's paired ratio
    baseline_tpot_ms_samples: list[float] = field(default_factory=list)  # the pairs' baseline side, run order


@_block()
class LatencyScenario:
    prompt_tokens: int
    batch_size: int
    new_tokens: int
    status: Literal["ok", "oom", "unsupported"] = "ok"  # unsupported: a shape the engine cannot decode
    error: Optional[str] = None
    requests: int = 0  # requests measured, all rounds
    rounds: int = 0
    stop_reasons: list[str] = field(default_factory=list)  # one per round
    ttft_ms: Optional[Stats] = None  # per request: time to first token
    tpot_ms: Optional[Stats] = None  # per request: (e2e - TTFT) / (N - 1)
    e2e_ms: Optional[Stats] = None  # per request
    itl_ms: Optional[Stats] = None  # every inter-token interval; interval by resampling requests
    output_tokens_per_s: Optional[float] = None  # batch * N / median e2e
    round_tpot_ms: list[float] = field(default_factory=list)  # median TPOT of each round
    round_spread: Optional[float] = None  # (max - min) / median of the round medians, when rounds > 1
    bare_tpot_ms: Optional[Stats] = None  # the bare KV-cache loop, per request
    generate_over_bare: Optional[float] = None  # median TPOT of generate() / of the bare loop
    bare_tokens_match: Optional[bool] = None  # both paths decoded the same tokens
    paired: Optional[PairedRatio] = None
    engine_tpot_ms: Optional[Stats] = None  # the engine's own per-token timing of the same requests
    tpot_over_engine: Optional[float] = None  # median TPOT timed here / as the engine timed it
    generated_tokens: int = 0  # by the variant's requests (for energy per token)
    measured_s: float = 0.0
    energy_j: Optional[float] = None  # over the variant's requests, where a counter exists
    energy_j_per_token: Optional[float] = None
    across_runs: Optional[AcrossRuns] = None  # bench.runs > 1


@_block()
class Latency:
    """The scenarios as measured; the headline (the first scenario that ran) is set by the record builder."""
    ttft_ms: Optional[Stats] = None
    tpot_ms: Optional[Stats] = None
    itl_ms: Optional[Stats] = None
    e2e_ms: Optional[Stats] = None
    output_tokens_per_s: Optional[float] = None
    generate_over_bare: Optional[float] = None
    round_spread: Optional[float] = None
    paired: Optional[PairedRatio] = None
    scenarios: list[LatencyScenario] = field(default_factory=list)
    timed_path: str = ""  # what one request runs (Decoder.path)
    clock: str = ""
    threads: int = 0
    paired_with: Optional[str] = None  # the baseline interleaved for paired ratios, or why none


HEADLINE = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "output_tokens_per_s", "generate_over_bare", "round_spread",
            "paired")  # Latency's fields copied from its first scenario that ran


@_block()
class Memory:
    weights_bytes: Optional[int] = None
    peak_rss_bytes: Optional[int] = None
    peak_rss_scope: str = ""
    gpu_peak_allocated_bytes: Optional[int] = None
    gpu_peak_reserved_bytes: Optional[int] = None
    gpu_nvml_process_bytes: Optional[int] = None


@_block()
class Energy:
    """Energy over every measured latency scenario of a point (or a serving level)."""
    joules: Optional[float] = None
    j_per_token: Optional[float] = None
    source: Optional[str] = None  # "nvml" | "rapl"
    reason: Optional[str] = None  # why joules is null


@_block(frozen=True)
class Roofline:
    bytes_per_token: float  # weights + KV cache read per decoded token
    seconds_per_token: float
    achieved_bytes_per_s: float
    peak_bytes_per_s: float
    fraction_of_bandwidth: float


@_block(frozen=True)
class Fidelity:
    """Next-token distributions of a variant against its baseline's, token by token on the same
    held-out windows, computed from the two points' own stored distributions (harness/measure/
    fidelity.py), whichever ran first. Definitions are llama-perplexity --kl-divergence's: KL(base ||
    variant) per token; "same top" the share of tokens whose most probable next token agrees; delta-p
    the variant's probability of the true next token minus the baseline's. Intervals resample windows."""
    tokens: int
    windows: int
    top_k: int  # each point kept this many tokens per position (plus the rest's mass)
    exact: bool  # both kept the whole vocabulary: the KL is exact, else a lower bound (KL over a coarser partition)
    kl_mean_nats: float  # mean over tokens of KL(base || variant)
    kl_ci_low: float
    kl_ci_high: float
    kl_p99_nats: float  # per-token tail (kl_percentiles_nats["99"])
    same_top_rate: float  # share of tokens whose most probable next token is unchanged
    same_top_ci_low: float
    same_top_ci_high: float
    logprob_shift_nats: float  # threshold for the share below
    shifted_share: float  # share of tokens whose log p(true token) moved by more than the threshold
    shifted_ci_low: float
    shifted_ci_high: float
    loss_retention: float  # baseline loss / variant loss on the same tokens (1: unchanged; < 1: worse)
    loss_retention_ci_low: float
    loss_retention_ci_high: float
    ci_level: float
    ci_resamples: str = "windows"
    # llama-perplexity's distribution statistics (None in records written before they were kept)
    kl_percentiles_nats: Optional[dict[str, float]] = None  # "max", "99.9", "99", "95", "90", "50", "10", ..., "min"
    delta_p_mean: Optional[float] = None  # mean of p_variant(true) - p_base(true), as a probability (not %)
    delta_p_ci_low: Optional[float] = None
    delta_p_ci_high: Optional[float] = None
    delta_p_rms: Optional[float] = None  # sqrt(mean(delta-p^2))
    delta_p_rms_ci_low: Optional[float] = None
    delta_p_rms_ci_high: Optional[float] = None
    delta_p_percentiles: Optional[dict[str, float]] = None  # "max", "99.9", ..., "75", "50", "25", ..., "min"
    percentile_method: Optional[str] = None  # how the percentiles above interpolate between tokens


@_block()
class ServedRequest:
    """One request of a serving level, as the client saw it (raw: a report can recompute everything)."""
    index: int
    scheduled_s: float  # when the schedule meant it to leave (s from the level's start)
    sent_s: float  # when it left
    input_tokens: int  # as asked (prompt cut to this many tokens)
    output_tokens_asked: int
    output_tokens: int = 0  # as the server counted them (usage), else streamed chunks with text
    prompt_tokens: Optional[int] = None  # as the server counted the prompt (usage), when it says
    token_count_source: str = "chunks"  # usage | chunks
    ttft_ms: Optional[float] = None
    itl_ms: list[float] = field(default_factory=list)
    e2e_ms: Optional[float] = None
    error: Optional[str] = None  # None: completed with every token asked
    error_kind: Optional[str] = None  # connection | http | timeout | short | cancelled | protocol
    client_ms: float = 0.0  # time spent in the client's own chunk handling
    http_status: Optional[int] = None  # the server's answer, when it answered
    # its kept-alive connection failed before any answer (the server closed it as it was reused), so it was sent
    # again, once, on a fresh connection; its times count from the first send
    retried: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tpot_ms(self) -> Optional[float]:
        if self.ttft_ms is None or self.e2e_ms is None or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)


@_block()
class ServingRun:
    """A further run of a level (scenario.runs): its requests raw and its headline figures."""
    duration_s: float
    completed: int
    output_token_throughput: Optional[float] = None
    ttft_ms: Optional[Stats] = None
    tpot_ms: Optional[Stats] = None
    requests: list[ServedRequest] = field(default_factory=list)


@_block()
class ServingAcrossRuns:
    """A level measured in several runs (scenario.runs): run 1 is the level's own block, runs 2..N are
    ``others``, each against a freshly started server (a server given by URL cannot be restarted: runs
    follow each other against it). The pooled TTFT and TPOT medians' intervals come from a two-level
    bootstrap (runs, then requests inside each drawn run); the throughput is the median over runs, its
    interval from resampling runs: what the next run would read."""
    runs: int
    server_restarted: bool
    run_output_token_throughput: list[float]  # each run's, run 1 first
    output_token_throughput: float
    output_token_throughput_ci_low: float
    output_token_throughput_ci_high: float
    ttft_ms: Stats
    tpot_ms: Optional[Stats] = None
    ttft_width_ratio: Optional[float] = None  # across-run / run 1's within-run interval width
    tpot_width_ratio: Optional[float] = None
    others: list[ServingRun] = field(default_factory=list)


@_block()
class ServingLevel:
    """One level of load: every request, and the figures over those that completed
    (harness/measure/serving.py defines each); intervals resample requests."""
    kind: Literal["server", "concurrency", "offline"]
    level: float  # requests/s (server), clients (concurrency), requests sent at once (offline)
    duration_s: float  # first send to last completion (or the level's end)
    stop_reason: str
    completed: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error kind -> requests
    target_failed: bool = False  # connection errors, and then the target stopped answering its health check
    retries: int = 0  # requests sent again once on a fresh connection (ServedRequest.retried)
    # the server refused the level's first requests (HTTP 4xx before any answer, other than 408 and 429): its
    # own message; the level ended at once
    refused: Optional[str] = None
    request_throughput: Optional[float] = None  # completed / duration
    output_token_throughput: Optional[float] = None
    input_token_throughput: Optional[float] = None
    offered_rate: Optional[float] = None  # server: the rate asked
    # server: the rate of this seeded sample of arrivals (a finite Poisson sample is not the nominal
    # rate), and the rate requests actually left at
    scheduled_rate: Optional[float] = None
    achieved_send_rate: Optional[float] = None
    ttft_ms: Optional[Stats] = None
    tpot_ms: Optional[Stats] = None
    itl_ms: Optional[Stats] = None
    e2e_ms: Optional[Stats] = None
    ttft_p99_ci: Optional[tuple[float, float]] = None  # the p99's bootstrap interval (resampling requests)
    tpot_p99_ci: Optional[tuple[float, float]] = None
    send_lag_ms: Optional[Stats] = None  # sent - scheduled: the load generator's lateness
    client_ms_per_token: Optional[float] = None  # the client's chunk handling per streamed token
    energy_j_per_output_token: Optional[float] = None
    load_generator: str = ""
    across_runs: Optional[ServingAcrossRuns] = None  # scenario.runs > 1
    requests: list[ServedRequest] = field(default_factory=list)
