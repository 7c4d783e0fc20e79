"""Structured config schemas, registered in Hydra's ConfigStore.

The YAML files under conf/ hold values; these dataclasses hold types, so a typo'd key or a
string where a number belongs fails at compose time with Hydra's message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"


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


@dataclass
class DistilOptions:
    teacher: ModelConfig = field(default_factory=ModelConfig)
    student_init: StudentInit = field(default_factory=StudentInit)
    alpha: float = 0.5  # weight of the KD term (method kd; continue-ce uses 0)
    temperature: float = 2.0
    train_tokens: int = 262_144
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 1e-3
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.0  # the cosine decays to this fraction of lr at the last step
    weight_decay: float = 0.0
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 1.0  # max global gradient norm
    seed: int = 0
    text: str = MISSING  # a local UTF-8 training text
    out_root: str = "${models_dir}/distilled"  # students are saved under <out_root>/<recipe hash>/
    force: bool = False  # retrain even if the student exists


@dataclass
class VariantConfig:
    name: str = MISSING
    kind: str = "baseline"  # baseline | quantise | distil
    dtype: str = "float32"  # weights / compute dtype of the loaded model
    method: Optional[str] = None  # quantisation or distillation method name
    # One of the option schemas above, chosen by the variant's YAML (defaults: /variant_options@options)
    options: Any = field(default_factory=dict)


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


@dataclass
class QualityConfig:
    heldout_path: str = MISSING  # UTF-8 text never trained on by the tiny family
    context_length: int = 128
    stride: int = 64  # sliding-window stride; every token is scored once with >= ctx-stride context
    max_bytes: Optional[int] = 200_000  # cap the scored text (None: all of it)
    batch_size: int = 8


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
class TinyBuildConfig:
    out_dir: str = "${models_dir}/tiny"
    models_dir: str = "models"
    results_dir: str = "results"
    architecture: str = "llama"
    vocab_size: int = 2048
    max_chars: Optional[int] = None  # cap the corpus (None: all of it)
    heldout_every: int = 20  # a document goes to held-out when hash(doc) % heldout_every == 0
    seq_len: int = 128
    batch_size: int = 16
    train_tokens: int = 1_179_648
    lr: float = 3e-3
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.1  # cosine decays to this fraction of the peak at the last step
    weight_decay: float = 0.1
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0  # max global gradient norm
    eval_batch_size: int = 16  # held-out loss written into each card
    seed: int = 0
    threads: Optional[int] = None
    only: Optional[List[str]] = None  # build only these names
    force: bool = False
    models: List[TinyModelSpec] = field(default_factory=list)


@dataclass
class GridBudget:
    flops: float = MISSING  # the compute budget C of every run in this IsoFLOP curve (see harness/tiny/grid.py)
    shapes: List[str] = field(default_factory=list)  # names from GridConfig.shapes, smallest first


@dataclass
class LearningRateRule:
    """peak lr = ref * (params / ref_params) ** -exponent: wider models want a lower rate."""
    ref: float = 3e-3
    ref_params: float = 556_000  # total params of tiny-m, whose family lr is ref
    exponent: float = 0.1


@dataclass
class GridConfig:
    name: str = "tiny"
    out_dir: str = "${models_dir}/grid/${name}"
    family_dir: str = "${models_dir}/tiny"  # the family's tokenizer and text split (build-tiny first)
    models_dir: str = "models"
    results_dir: str = "results"
    shapes: List[TinyModelSpec] = field(default_factory=list)  # the size ladder (lr: from lr_rule)
    budgets: List[GridBudget] = field(default_factory=list)
    seeds_at_smallest: List[int] = field(default_factory=lambda: [0, 1])  # run-to-run noise, smallest budget
    lr_rule: LearningRateRule = field(default_factory=LearningRateRule)
    # as the family (conf/build_tiny.yaml): every run has its own warm-up + cosine over its own tokens
    seq_len: int = 128
    batch_size: int = 16
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.1
    weight_decay: float = 0.1
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0
    eval_batch_size: int = 16
    max_epochs: float = 4.0  # no token seen more often (Muennighoff et al. 2023: ~4 epochs ~ fresh data)
    extra_packages: List[str] = field(default_factory=lambda: ["numpy", "scipy"])  # docstrings added to train text
    extra_max_chars: Optional[int] = 4_000_000
    checkpoint_every: int = 100  # steps between resume points
    threads: Optional[int] = None
    only_budgets: Optional[List[int]] = None  # indices into budgets (None: all)
    force: bool = False


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


@dataclass
class GrowthConfig:
    g_i: float = 3.57  # frontier investment, x per year
    g_h: float = 1.4  # hardware price-performance, x per year
    g_alg: float = 2.8  # algorithmic efficiency, x per year


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


@dataclass
class RangeConfig:
    """An uncertain input: an interval with its coverage and its source (sampled lognormally)."""
    low: float = MISSING
    high: float = MISSING
    level: float = 0.9  # the interval's coverage, e.g. 0.95 for a published 95% CI
    source: str = MISSING  # where the interval comes from


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
