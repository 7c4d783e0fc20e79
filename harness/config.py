"""Structured config schemas, registered in Hydra's ConfigStore.

The YAML files under conf/ hold values; these dataclasses hold types, so a typo'd key or a
string where a number belongs fails at compose time with Hydra's message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import re
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"


class ConfigValueError(ValueError):
    """A config value outside what its key accepts (raised when the config is instantiated, at
    compose time in every command, before anything loads)."""


# The closed sets, named once (the modules that act on them import these; tests/test_config.py checks
# that each matches its implementation)
DTYPE_NAMES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")  # harness.variants.DTYPES' keys
MODEL_SOURCES = ("local", "hub", "gguf")  # harness.models.load_model
VARIANT_KINDS = ("baseline", "quantise", "distil")  # harness.variants.prepare's registry
LAW_SOURCES = ("paper", "chinchilla", "chinchilla-unrounded", "epoch", "measured")  # harness.projector.inputs
LAW_TRANSFERS = ("exponent", "full")  # how a measured law is carried to the projection
COST_SOURCES = ("measured", "assumed")  # the inference gap's cost per token
STUDENT_INITS = ("model", "every_kth_layer", "fresh")  # harness.variants.distil
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _set(value: Any) -> bool:
    """False for a value still MISSING (a nested schema's defaults are instantiated before the YAML's)."""
    return value is not None and value != MISSING


def _one_of(key: str, value: Any, valid: Sequence[str]) -> None:
    if _set(value) and value not in valid:
        raise ConfigValueError(f"{key}={value!r}; valid: {', '.join(valid)}")


def _at_least(key: str, value: Any, low: float, why: str = "") -> None:
    if _set(value) and value < low:
        raise ConfigValueError(f"{key}={value!r}; valid: >= {low}" + (f" ({why})" if why else ""))


def _positive(key: str, value: Any) -> None:
    if _set(value) and value <= 0:
        raise ConfigValueError(f"{key}={value!r}; valid: > 0")


def _fraction(key: str, value: Any, closed: bool = False) -> None:
    """In (0, 1), or [0, 1] when closed."""
    if _set(value) and not (0 <= value <= 1 if closed else 0 < value < 1):
        raise ConfigValueError(f"{key}={value!r}; valid: " + ("0 to 1" if closed else "strictly between 0 and 1"))


def _share(key: str, value: Any) -> None:
    """A share of a whole: in (0, 1]."""
    if _set(value) and not 0 < value <= 1:
        raise ConfigValueError(f"{key}={value!r}; valid: above 0, at most 1")


def _each(check: Callable[..., None], key: str, values: Any, *args: Any) -> None:
    items = values.items() if isinstance(values, dict) else enumerate(values or [])
    for k, v in items:
        check(f"{key}.{k}", v, *args)


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
    inherits it, distillation with its own defaults). harness.train.TrainRecipe.from_settings
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


@dataclass
class VariantConfig:
    name: str = MISSING
    kind: str = "baseline"  # baseline | quantise | distil
    dtype: str = "float32"  # weights / compute dtype of the loaded model
    method: Optional[str] = None  # quantisation or distillation method name
    # One of the option schemas above, chosen by the variant's YAML (defaults: /variant_options@options)
    options: Any = field(default_factory=dict)

    def __post_init__(self) -> None:
        _one_of("variant.kind", self.kind, VARIANT_KINDS)
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

    def __post_init__(self) -> None:
        _at_least("bench.new_tokens", self.new_tokens, 2, "time per output token needs a second token")
        _each(_at_least, "bench.prompt_tokens", self.prompt_tokens, 1)
        _each(_at_least, "bench.batch_sizes", self.batch_sizes, 1)
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
    results_dir: str = "results"
    models_dir: str = "models"
    force: bool = False  # recompute points whose ok record exists
    offline: Optional[bool] = None  # None: follow HF_HUB_OFFLINE / probe the hub quickly
    seed: int = 0


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


@dataclass
class BuildTasksConfig:
    heldout_path: str = "${models_dir}/tiny/data/heldout.txt"
    out_dir: str = "${models_dir}/tiny/tasks"
    seed: int = 0
    results_dir: str = "results"
    models_dir: str = "models"


@dataclass
class TinyModelSpec:
    name: str = MISSING
    hidden_size: int = MISSING
    num_layers: int = MISSING
    num_heads: int = MISSING
    intermediate_size: int = MISSING
    lr: Optional[float] = None  # peak learning rate for this size (None: the family's lr); wider wants lower


@dataclass
class TinyBuildConfig(TrainingSettings):
    out_dir: str = "${models_dir}/tiny"
    models_dir: str = "models"
    results_dir: str = "results"
    architecture: str = "llama"
    vocab_size: int = 2048
    max_chars: Optional[int] = None  # cap the corpus (None: all of it)
    heldout_every: int = 20  # a document goes to held-out when hash(doc) % heldout_every == 0
    train_tokens: int = 1_179_648
    lr: float = 3e-3
    eval_batch_size: int = 16  # held-out loss written into each card
    seed: int = 0
    threads: Optional[int] = None
    only: Optional[List[str]] = None  # build only these names
    force: bool = False
    models: List[TinyModelSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("lr", self.lr)
        _at_least("train_tokens", self.train_tokens, 1)
        _at_least("vocab_size", self.vocab_size, 2)
        _at_least("heldout_every", self.heldout_every, 2)


@dataclass
class GridBudget:
    flops: float = MISSING  # the compute budget C of every run in this IsoFLOP curve (see harness/tiny/grid.py)
    shapes: List[str] = field(default_factory=list)  # names from GridConfig.shapes, smallest first


@dataclass
class LearningRateRule:
    """peak lr = ref * (params / ref_params) ** -exponent: wider models want a lower rate."""
    ref: float = 3e-3
    ref_params: float = 556_704  # total params of tiny-m, whose family lr is ref
    exponent: float = 0.1

    def __post_init__(self) -> None:
        _positive("lr_rule.ref", self.ref)
        _positive("lr_rule.ref_params", self.ref_params)


@dataclass
class GridConfig(TrainingSettings):
    name: str = "tiny"
    out_dir: str = "${models_dir}/grid/${name}"
    family_dir: str = "${models_dir}/tiny"  # the family's tokenizer and text split (build-tiny first)
    models_dir: str = "models"
    results_dir: str = "results"
    shapes: List[TinyModelSpec] = field(default_factory=list)  # the size ladder (lr: from lr_rule)
    budgets: List[GridBudget] = field(default_factory=list)
    seeds_at_smallest: List[int] = field(default_factory=lambda: [0, 1])  # run-to-run noise, smallest budget
    lr_rule: LearningRateRule = field(default_factory=LearningRateRule)
    # the training settings are the family's (TrainingSettings); every run has its own warm-up and
    # cosine over its own tokens
    eval_batch_size: int = 16
    max_epochs: float = 4.0  # no token seen more often (Muennighoff et al. 2023: ~4 epochs ~ fresh data)
    extra_packages: List[str] = field(default_factory=lambda: ["numpy", "scipy"])  # docstrings added to train text
    extra_max_chars: Optional[int] = 4_000_000
    checkpoint_every: int = 100  # steps between resume points
    threads: Optional[int] = None
    only_budgets: Optional[List[int]] = None  # indices into budgets (None: all)
    force: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("max_epochs", self.max_epochs)
        _at_least("checkpoint_every", self.checkpoint_every, 1)


@dataclass
class LawFitConfig:
    grid_name: str = "tiny"  # the grid's `name` (conf/grid/<name>.yaml)
    grid_dir: str = "${models_dir}/grid/${grid_name}"  # where build-grid wrote grid.json
    out_dir: str = "${results_dir}/scaling/${grid_name}"
    resamples: int = 100  # bootstrap refits per approach, each from the full grid of starts
    level: float = 0.9  # band level
    huber_delta: float = 1e-3  # Hoffmann et al.'s delta on log loss
    seed: int = 0
    models_dir: str = "models"
    results_dir: str = "results"

    def __post_init__(self) -> None:
        _at_least("resamples", self.resamples, 0)
        _fraction("level", self.level)
        _positive("huber_delta", self.huber_delta)


@dataclass
class LawConfig:
    source: str = "paper"  # paper | chinchilla (rounded, as published) | chinchilla-unrounded | epoch | measured
    L0: float = 1.7
    A: float = 1070.0
    alpha: float = 0.155
    # measured: the compute-optimal law of an IsoFLOP grid (`meekbench fit-law`), and how it is carried
    # to the paper's compute scale: exponent (keep L0 and A above, E and G being corpus- and
    # tokenizer-specific) | full (every measured parameter)
    measured_path: str = "${results_dir}/scaling/tiny/law.json"
    transfer: str = "exponent"
    # A published L(N, D) fit's standard errors (keys E, A, B, a, b), sampled as independent normals
    # in the Monte Carlo; only for the published sources (chinchilla, chinchilla-unrounded, epoch)
    standard_errors: Optional[Dict[str, float]] = None
    standard_errors_source: str = ""

    def __post_init__(self) -> None:
        _one_of("projector.law.source", self.source, LAW_SOURCES)
        _one_of("projector.law.transfer", self.transfer, LAW_TRANSFERS)
        _at_least("projector.law.L0", self.L0, 0)
        _positive("projector.law.A", self.A)
        _positive("projector.law.alpha", self.alpha)
        _each(_at_least, "projector.law.standard_errors", self.standard_errors, 0)


@dataclass
class GrowthConfig:
    g_i: float = 3.57  # frontier investment, x per year
    g_h: float = 1.4  # hardware price-performance, x per year
    g_alg: float = 2.8  # algorithmic efficiency, x per year

    def __post_init__(self) -> None:
        for name in ("g_i", "g_h", "g_alg"):
            _positive(f"projector.growth.{name}", getattr(self, name))


@dataclass
class InferenceConfig:
    price_per_token_usd: float = 1e-6  # what the meek actor pays per generated token
    g_cost: float = 9.0  # yearly fall in the cost of a fixed capability (Cottier et al. 2025)
    flops_per_param: float = 2.0  # decode FLOPs per parameter per token (the assumed rate only)
    # measured: each record's own decode cost at batch_size (median TPOT x the price it ran with),
    # falling back to the assumed rate (flop_per_dollar / flops_per_param) when no record has one,
    # and saying so | assumed
    cost_source: str = "measured"
    batch_size: int = 1  # the measured shape whose decode cost per token is read
    # Both actors' runnable models are read on the projection's law as if trained compute-optimally
    tokens_per_param: float = 20.0
    tokens_per_param_source: str = ("Hoffmann et al. 2022 (Chinchilla): compute-optimal training uses about "
                                    "20 tokens per parameter")
    # The frontier's spend per token over the meek actor's grows this much per year. An assumption,
    # not a measurement: by default the frontier's investment growth g_i (the paper's premise).
    frontier_spend_growth: float = 3.57
    frontier_spend_source: str = "assumption: grows with frontier investment, g_i (Gundlach, Lynch & Thompson 2025)"

    def __post_init__(self) -> None:
        key = "projector.inference"
        _one_of(f"{key}.cost_source", self.cost_source, COST_SOURCES)
        for name in ("price_per_token_usd", "g_cost", "flops_per_param", "tokens_per_param", "frontier_spend_growth"):
            _positive(f"{key}.{name}", getattr(self, name))
        _at_least(f"{key}.batch_size", self.batch_size, 1)


@dataclass
class RangeConfig:
    """An uncertain input: an interval with its coverage and its source (sampled lognormally)."""
    low: float = MISSING
    high: float = MISSING
    level: float = 0.9  # the interval's coverage, e.g. 0.95 for a published 95% CI
    source: str = MISSING  # where the interval comes from

    def __post_init__(self) -> None:
        _positive("projector.uncertainty.*.low", self.low)  # sampled lognormally
        if _set(self.low) and _set(self.high) and self.high < self.low:
            raise ConfigValueError(f"projector.uncertainty: high={self.high!r} below low={self.low!r}")
        _fraction("projector.uncertainty.*.level", self.level)


@dataclass
class ProjectorConfig:
    name: str = MISSING
    law: LawConfig = field(default_factory=LawConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    budget_usd: float = 1000.0  # the meek actor's fixed training budget
    # FLOP per dollar: default is an H100 (989 dense bf16 TFLOP/s) at $2/h and 40% utilisation.
    flop_per_dollar: float = 7.1e17
    flop_per_dollar_from_hardware: bool = False  # measured matmul FLOP/s x utilisation / price_per_hour_usd
    utilisation: float = 0.4  # share of a measured peak matmul rate that training sustains (the default's 40%)
    price_per_hour_usd: Optional[float] = None  # for flop_per_dollar_from_hardware
    # hardware label -> USD per hour for the points' measured decode cost, overriding the price each
    # point's run was configured with (as the report's judge.prices)
    prices: Dict[str, float] = field(default_factory=dict)
    start_year: float = 2025.0
    horizon_years: float = 10.0
    steps_per_year: int = 4
    error_rate: float = 0.05  # Wald test error rate
    p_steps: List[int] = field(default_factory=lambda: [1, 5, 20])
    family: str = "tiny"  # whose baseline points the measured law is fitted to
    baseline_variant: str = "fp32"
    task: Optional[str] = None  # lm-eval task whose accuracy feeds the sigmoid (None: the one with most points)
    task_chance: Optional[float] = None  # that task's chance accuracy: the sigmoid's floor (None: fitted in [0, 1])
    bootstrap: int = 200
    seed: int = 0
    # Uncertain inputs by name (g_i, g_h, g_alg); absent ones are held at their point value.
    # The measured law's uncertainty comes from its bootstrap.
    uncertainty: Dict[str, RangeConfig] = field(default_factory=dict)
    monte_carlo: int = 2000  # joint samples of the uncertain inputs
    closing_levels: List[float] = field(default_factory=lambda: [0.05, 0.01])  # gap levels (nats) to report closing times for
    start_ratio: float = 1.0  # frontier / meek compute at t = 0
    start_ratio_source: str = "paper: both actors start from the same compute (Gundlach, Lynch & Thompson 2025)"

    def __post_init__(self) -> None:
        key = "projector"
        for name in ("budget_usd", "flop_per_dollar", "price_per_hour_usd", "horizon_years", "start_ratio"):
            _positive(f"{key}.{name}", getattr(self, name))
        _share(f"{key}.utilisation", self.utilisation)
        _each(_positive, f"{key}.prices", self.prices)
        _at_least(f"{key}.steps_per_year", self.steps_per_year, 1)
        _fraction(f"{key}.error_rate", self.error_rate)
        _each(_at_least, f"{key}.p_steps", self.p_steps, 1)
        _at_least(f"{key}.bootstrap", self.bootstrap, 0)
        _at_least(f"{key}.monte_carlo", self.monte_carlo, 0)
        _each(_positive, f"{key}.closing_levels", self.closing_levels)
        _fraction(f"{key}.task_chance", self.task_chance, closed=True)


@dataclass
class ProjectConfig:
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    results_dirs: List[str] = field(default_factory=lambda: ["${results_dir}"])
    out_dir: str = "${results_dir}/projections/${projector.name}"
    results_dir: str = "results"
    models_dir: str = "models"


VARIANT_OPTIONS = {"none": NoOptions, "bnb_int8": BnbInt8Options, "bnb_4bit": Bnb4bitOptions,
                   "grouped_int4": GroupedInt4Options, "torch_dynamic": TorchDynamicOptions, "distil": DistilOptions}


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(name="build_tiny_schema", node=TinyBuildConfig)
    cs.store(name="build_tasks_schema", node=BuildTasksConfig)
    cs.store(name="build_grid_schema", node=GridConfig)
    cs.store(name="fit_law_schema", node=LawFitConfig)
    cs.store(name="summary_schema", node=SummaryConfig)
    cs.store(name="report_schema", node=ReportConfig)
    cs.store(name="project_schema", node=ProjectConfig)
    for name, node in VARIANT_OPTIONS.items():  # variant YAMLs pick theirs: `- /variant_options@options: <name>`
        cs.store(group="variant_options", name=name, node=node)


register()
