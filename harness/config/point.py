"""A point's config: the model, the variant and its options, the training settings distillation
shares with the family and the grid, what the point measures (eval, quality, bench, hardware,
compare), and the report's judging."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

from omegaconf import MISSING

from harness.config.checks import (DTYPE_NAMES, MODEL_SOURCES, STUDENT_INITS, ConfigValueError, _DEVICE, _at_least,
                                   _each, _fraction, _one_of, _positive, _set, _share)
from harness.config.engines import EngineConfig, engine_schemas, in_process_engines, server_engines
from harness.config.serving import ScenarioConfig, SloConfig, scenario_specs


@dataclass
class ModelConfig:
    name: str = MISSING
    source: str = MISSING  # "local" (a directory), "hub" (a hub id) or "gguf" (a GGUF file, converted once)
    path: Optional[str] = None  # local directory, when source=local; the converted checkpoint, when source=gguf
    hub_id: Optional[str] = None  # when source=hub
    revision: str = "main"
    gguf_file: Optional[str] = None  # source=gguf: a .gguf path, or the file's name inside gguf_package
    gguf_package: Optional[str] = None  # source=gguf: the installed distribution that ships gguf_file
    family: str = ""
    params: Optional[int] = None  # declared total parameters (the card's count wins for local models)
    non_embedding_params: Optional[int] = None
    train_tokens: Optional[int] = None
    trust_remote_code: bool = False
    use_safetensors: bool = True
    distilled_from: Optional[str] = None  # hub id or name of the teacher, for pre-distilled checkpoints
    build_hint: str = ""  # what to run when a local model is missing

    def __post_init__(self) -> None:
        _one_of("model.source", self.source, MODEL_SOURCES)


@dataclass
class NoOptions:
    """Options of a variant that takes none (the dtype baselines)."""


@dataclass
class BnbInt8Options:
    llm_int8_threshold: float = 6.0  # activations above it stay in fp16 (LLM.int8 outliers)
    skip_modules: Optional[List[str]] = None  # module names left unquantised


@dataclass
class Bnb4bitOptions:
    double_quant: bool = False  # quantise the quantisation constants too
    compute_dtype: Optional[str] = None  # None: the variant's dtype
    skip_modules: Optional[List[str]] = None


@dataclass
class GroupedInt4Options:
    group_size: int = 32  # weights per scale


@dataclass
class TorchDynamicOptions:
    skip_modules: List[str] = field(default_factory=lambda: ["lm_head"])  # quantising lm_head breaks tie_weights
    # one weight scale per output row instead of per tensor: a tensor-wide scale loses the small rows
    # of a layer with outliers (SmolLM2-135M: KL 1.27 nats/token per tensor)
    per_channel: bool = False


@dataclass
class StudentInit:
    kind: str = "model"  # model (the point's model as is) | every_kth_layer | fresh
    k: int = 2  # every_kth_layer: keep layers 0, k, 2k, ...
    shape: Dict[str, int] = field(default_factory=dict)  # fresh: config fields to change (hidden_size, ...)
    seed: int = 0  # fresh: initialisation seed

    def __post_init__(self) -> None:
        _one_of("variant.options.student_init.kind", self.kind, STUDENT_INITS)
        _at_least("variant.options.student_init.k", self.k, 1)


@dataclass
class TrainingSettings:
    """The training settings the tiny family, the grid and distillation share (one schema; each
    inherits it, distillation with its own defaults). harness.tiny.train.TrainRecipe.from_settings
    turns them into a run's recipe."""
    seq_len: int = 128
    batch_size: int = 16
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.1  # the cosine decays to this fraction of the peak at the last step
    weight_decay: float = 0.1
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0  # max global gradient norm

    _key: ClassVar[str] = ""  # where these keys sit in the composed config, for error messages

    def __post_init__(self) -> None:
        key = self._key
        _at_least(f"{key}seq_len", self.seq_len, 2)
        _at_least(f"{key}batch_size", self.batch_size, 1)
        _fraction(f"{key}warmup_fraction", self.warmup_fraction, closed=True)
        _fraction(f"{key}min_lr_fraction", self.min_lr_fraction, closed=True)
        _at_least(f"{key}weight_decay", self.weight_decay, 0)
        _positive(f"{key}grad_clip", self.grad_clip)
        if _set(self.adam_betas) and not (len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas)):
            raise ConfigValueError(f"{key}adam_betas={list(self.adam_betas)!r}; valid: two numbers in [0, 1)")


@dataclass
class DistilOptions(TrainingSettings):
    teacher: ModelConfig = field(default_factory=ModelConfig)
    student_init: StudentInit = field(default_factory=StudentInit)
    alpha: float = 0.5  # weight of the KD term (method kd; continue-ce uses 0)
    temperature: float = 2.0
    train_tokens: int = 262_144
    lr: float = 1e-3
    # a short continuation of a trained model, not a run from scratch: no floor, no decay, Adam's betas
    min_lr_fraction: float = 0.0
    weight_decay: float = 0.0
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    seed: int = 0
    text: str = MISSING  # a local UTF-8 training text
    out_root: str = "${models_dir}/distilled"  # students are saved under <out_root>/<recipe hash>/
    force: bool = False  # retrain even if the student exists

    _key: ClassVar[str] = "variant.options."

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("variant.options.lr", self.lr)
        _fraction("variant.options.alpha", self.alpha, closed=True)
        _positive("variant.options.temperature", self.temperature)
        _at_least("variant.options.train_tokens", self.train_tokens, 1)


def variant_kinds() -> tuple[str, ...]:
    """Every variant kind some registered engine prepares."""
    return tuple(dict.fromkeys(k for cls in engine_schemas().values() for k in cls.variant_kinds))


@dataclass
class VariantConfig:
    name: str = MISSING
    kind: str = "baseline"  # one of the registered engines' variant kinds (harness/config/engines.py)
    dtype: str = "float32"  # weights / compute dtype of the loaded model
    method: Optional[str] = None  # quantisation or distillation method name
    # One of the option schemas above, chosen by the variant's YAML (defaults: /variant_options@options)
    options: Any = field(default_factory=dict)

    def __post_init__(self) -> None:
        _one_of("variant.kind", self.kind, variant_kinds())
        _one_of("variant.dtype", self.dtype, DTYPE_NAMES)


@dataclass
class EvalConfig:
    suite: str = "none"
    tasks: List[str] = field(default_factory=list)
    num_fewshot: Dict[str, int] = field(default_factory=dict)  # task -> shots; absent tasks use default_fewshot
    default_fewshot: int = 0
    batch_size: int = 8  # fixed per suite: padding can change accuracy
    log_samples: bool = True  # per-sample logs next to the record
    include_path: Optional[str] = None  # a directory of local task YAMLs
    include_defaults: bool = True  # lm-eval's own task registry as well
    limit: Optional[float] = None  # lm-eval's limit: a count, or a fraction below 1
    offline: bool = False  # hub access off while evaluating (restored afterwards)
    bootstrap_iters: int = 100_000  # lm-eval's stderr bootstrap
    missing_hint: str = ""  # what to run when a task under include_path is missing
    progress_bars: bool = False  # lm-eval's per-request progress bars
    random_seed: int = 0  # lm-eval's seeds (its own defaults)
    numpy_random_seed: int = 1234
    torch_random_seed: int = 1234
    fewshot_random_seed: int = 1234

    def __post_init__(self) -> None:
        _at_least("eval.batch_size", self.batch_size, 1)
        _at_least("eval.default_fewshot", self.default_fewshot, 0)
        _positive("eval.limit", self.limit)
        _at_least("eval.bootstrap_iters", self.bootstrap_iters, 0)


@dataclass
class QualityConfig:
    heldout_path: str = MISSING  # UTF-8 text never trained on by the tiny family
    context_length: int = 128
    stride: int = 64  # sliding-window stride; every token is scored once with >= ctx-stride context
    max_bytes: Optional[int] = 200_000  # cap the scored text (None: all of it)
    batch_size: int = 8

    def __post_init__(self) -> None:
        _at_least("quality.context_length", self.context_length, 2)
        _at_least("quality.stride", self.stride, 1)
        if _set(self.stride) and _set(self.context_length) and self.stride > self.context_length:
            raise ConfigValueError(f"quality.stride={self.stride!r}; valid: 1 to quality.context_length "
                                   f"({self.context_length}), or tokens would go unscored")
        _at_least("quality.max_bytes", self.max_bytes, 1)
        _at_least("quality.batch_size", self.batch_size, 1)


@dataclass
class BenchConfig:
    prompt_tokens: List[int] = field(default_factory=lambda: [64])
    new_tokens: int = 32
    batch_sizes: List[int] = field(default_factory=lambda: [1])
    warmup: int = 2  # warm-up requests per arm at the measured shapes
    repeats: int = 5  # rounds per scenario; intervals resample rounds then requests; their spread is recorded
    min_iterations: int = 5  # per round: requests until both minimums are met...
    min_seconds: float = 1.0
    max_iterations: int = 200  # ...or this cap
    target_rel_ci: Optional[float] = None  # stop a round early once the TPOT interval's half-width / median <= this
    bare_loop: bool = True  # time a bare greedy KV-cache loop of model() calls beside generate()
    paired_baseline: bool = False  # interleave the same model's baseline and record paired speed ratios
    paired_baseline_dtype: str = "float32"  # the baseline it is paired with (a dtype baseline)
    threads: Optional[int] = None  # torch intra-op threads; None keeps torch's default
    bootstrap_resamples: int = 2000
    seed: int = 0
    runs: int = 1  # > 1: time the point this many times, runs 2..N each in a fresh process: across-run intervals

    def __post_init__(self) -> None:
        _at_least("bench.new_tokens", self.new_tokens, 2, "time per output token needs a second token")
        _at_least("bench.runs", self.runs, 1)
        _each(_at_least, "bench.prompt_tokens", self.prompt_tokens, 1)
        _each(_at_least, "bench.batch_sizes", self.batch_sizes, 1)
        for key, values in (("bench.prompt_tokens", self.prompt_tokens), ("bench.batch_sizes", self.batch_sizes)):
            if _set(values) and len(values) == 0:
                raise ConfigValueError(f"{key}=[]; valid: at least one value (a point with no shape times nothing)")
        _at_least("bench.warmup", self.warmup, 0)
        _at_least("bench.repeats", self.repeats, 1)
        _at_least("bench.min_iterations", self.min_iterations, 1)
        _at_least("bench.min_seconds", self.min_seconds, 0)
        _at_least("bench.max_iterations", self.max_iterations, self.min_iterations if _set(self.min_iterations) else 1,
                  "at least bench.min_iterations")
        _positive("bench.target_rel_ci", self.target_rel_ci)
        _one_of("bench.paired_baseline_dtype", self.paired_baseline_dtype, DTYPE_NAMES)
        _at_least("bench.threads", self.threads, 1)
        _at_least("bench.bootstrap_resamples", self.bootstrap_resamples, 1)


@dataclass
class HardwareConfig:
    label: Optional[str] = None  # human name of the target ("a100-lab"); None derives one
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    price_per_hour_usd: Optional[float] = None  # for cost per token and FLOP/$ in the projector
    price_source: Optional[str] = None  # where that price comes from: printed wherever a dollar figure is
    probe: bool = True  # run the bandwidth / matmul probes (cached per machine)
    probe_cache_dir: str = "${results_dir}/hardware"
    probe_repeats: int = 7  # timed runs of each probe (after one untimed)
    probe_copy_bytes: Optional[int] = None  # None: 1 GiB on a GPU, 128 MiB on a CPU
    probe_matmul_n: Optional[int] = None  # None: 8192 (bf16) on a GPU, 1024 (fp32) on a CPU

    def __post_init__(self) -> None:
        if _set(self.device) and not _DEVICE.fullmatch(str(self.device)):
            raise ConfigValueError(f"hardware.device={self.device!r}; valid: auto, cpu, mps, cuda, cuda:N")
        _positive("hardware.price_per_hour_usd", self.price_per_hour_usd)
        _at_least("hardware.probe_repeats", self.probe_repeats, 1)
        _positive("hardware.probe_copy_bytes", self.probe_copy_bytes)
        _positive("hardware.probe_matmul_n", self.probe_matmul_n)


@dataclass
class CompareConfig:
    """What a point measures against its baseline's held-out reference (same model, same hardware,
    ``baseline_variant``): its fidelity. Comparing records (tasks, gates, cost) is the report's job."""
    baseline_variant: str = "fp32"  # whose points write the held-out reference the others are compared with
    top_k: int = 32  # next-token distribution kept per held-out token (plus the rest's mass)
    full_vocab_max: int = 512  # vocabularies up to this size are kept whole (KL exact)
    logprob_shift_nats: float = 0.1  # a token "moved" when |log p(true token)| changed by more than this
    build_missing_reference: bool = False  # load the baseline inside the point when its reference is missing
    bootstrap_resamples: int = 2000  # fidelity's intervals (resampling windows)
    ci_level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        _at_least("compare.top_k", self.top_k, 1)
        _at_least("compare.full_vocab_max", self.full_vocab_max, 0)
        _positive("compare.logprob_shift_nats", self.logprob_shift_nats)
        _at_least("compare.bootstrap_resamples", self.bootstrap_resamples, 1)
        _fraction("compare.ci_level", self.ci_level)


@dataclass
class JudgeConfig:
    """How the report judges records against their baselines: analysis settings, not measurement
    ones (changing them re-measures nothing)."""
    gates: List[float] = field(default_factory=lambda: [0.99, 0.999])  # retention gates (MLPerf's two classes)
    bootstrap_resamples: int = 2000  # paired task intervals (resampling items)
    ci_level: float = 0.95
    seed: int = 0
    # share of the probe's matmul rate that training sustains, for a distilled student's extra
    # training dollars (the projector's default of 40%, the paper's utilisation assumption)
    training_utilisation: float = 0.4
    # hardware label -> USD per hour, overriding the price each point's run was configured with
    prices: Dict[str, float] = field(default_factory=dict)
    slo: SloConfig = field(default_factory=SloConfig)  # serving levels: goodput and the operating point

    def __post_init__(self) -> None:
        _each(_positive, "judge.gates", self.gates)
        _at_least("judge.bootstrap_resamples", self.bootstrap_resamples, 1)
        _fraction("judge.ci_level", self.ci_level)
        _share("judge.training_utilisation", self.training_utilisation)
        _each(_positive, "judge.prices", self.prices)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    variant: VariantConfig = field(default_factory=VariantConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)  # lm-eval suite (conf/eval/)
    compare: CompareConfig = field(default_factory=CompareConfig)
    # what runs the model (conf/engine/): one of the registered engine schemas, chosen by the engine's YAML
    engine: EngineConfig = MISSING
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)  # how the model is loaded (conf/scenario/)
    results_dir: str = "results"
    models_dir: str = "models"
    force: bool = False  # recompute points whose ok record exists
    offline: Optional[bool] = None  # None: follow HF_HUB_OFFLINE / probe the hub quickly
    seed: int = 0

    def __post_init__(self) -> None:
        """The axes' combinations, checked before anything loads."""
        engine, variant, model = self.engine.name, self.variant, self.model
        if not all(_set(v) for v in (engine, variant.kind, variant.name, model.source)):
            return
        schemas = engine_schemas()
        kinds = schemas[engine].variant_kinds
        if variant.kind not in kinds:
            runs = " or ".join(e for e, cls in schemas.items() if variant.kind in cls.variant_kinds)
            raise ConfigValueError(f"variant.kind={variant.kind!r} (variant {variant.name}) with engine.name={engine}; "
                                   f"valid: {', '.join(kinds)} (this variant runs with engine={runs})")
        scenario = self.scenario
        serving = scenario_specs()[scenario.kind].serving if _set(scenario.kind) else False
        if not serving and _set(scenario.target.url):
            raise ConfigValueError(f"scenario.target.url={scenario.target.url!r} with scenario.kind={scenario.kind!r}, "
                                   "which measures the model in this process; valid: a serving scenario (scenario="
                                   f"{' or scenario='.join(n for n, s in scenario_specs().items() if s.serving)})")
        if _set(scenario.kind) and not serving and not schemas[engine].prepare:
            raise ConfigValueError(f"engine.name={engine} with scenario.kind={scenario.kind!r}: {engine} is measured "
                                   "only behind the server meekbench starts for it; valid: a serving scenario (scenario="
                                   f"{' or scenario='.join(n for n, s in scenario_specs().items() if s.serving)}), or "
                                   f"engine={' or engine='.join(in_process_engines())} for scenario={scenario.kind}")
        if serving and not _set(scenario.target.url) and engine not in server_engines():
            raise ConfigValueError(f"scenario.kind={scenario.kind!r} with engine.name={engine} and no "
                                   f"scenario.target.url; valid: engine={' or '.join(server_engines())} (meekbench "
                                   "starts its server), or scenario.target.url=http://host:port of a running server")
        self.engine.check(variant, model)


@dataclass
class SummaryConfig:
    results_dir: str = "results"
    models_dir: str = "models"
    baseline_variant: str = "fp32"  # other variants are compared to this variant of their model


@dataclass
class ReportConfig:
    results_dirs: List[str] = field(default_factory=lambda: ["${results_dir}"])
    out_dir: str = "${results_dirs.0}/report"
    baseline_variant: str = "fp32"
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    results_dir: str = "results"
    models_dir: str = "models"
