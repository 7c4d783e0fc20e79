"""What the build commands take: the ci tasks, the tiny family, the IsoFLOP grid and the law fit."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from harness.config.checks import ConfigValueError, _at_least, _fraction, _one_of, _positive
from harness.config.point import TrainingSettings


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
        known = [m.name for m in self.models]
        unknown = sorted(set(self.only or ()) - set(known))
        if unknown:
            raise ConfigValueError(f"only={list(self.only)} names {unknown}, not in the family; valid: {known}")


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
class LearningRateSweep:
    """Extra runs of one shape at one budget with the rule's lr scaled, to check the rule sits near
    the optimum; kept out of the law (fit-law reports them as the lr check)."""
    budget: int = 1  # index into budgets
    shape: str = MISSING  # a name from that budget's shapes
    multipliers: List[float] = field(default_factory=lambda: [0.5, 2.0])  # 1 is the grid's own run

    def __post_init__(self) -> None:
        _at_least("lr_sweep.budget", self.budget, 0)
        for m in self.multipliers:
            _positive("lr_sweep.multipliers[]", m)


GRID_PRECISIONS = ("fp32", "bf16")


@dataclass
class GridText:
    """A grid's own text, from a `datasets` data set (a hub id, or a local builder such as "text"
    with data_files), streamed: the first max_docs documents, 1 in heldout_every held out by the
    SHA-1 of the document, so the held-out loss is read on the training distribution."""
    path: str = MISSING  # e.g. HuggingFaceFW/fineweb-edu, or "text" with data_files
    name: Optional[str] = None  # the data set's configuration, e.g. sample-10BT
    split: str = "train"
    data_files: Optional[List[str]] = None
    text_field: str = "text"
    max_docs: int = 1_000_000
    heldout_every: int = 100
    heldout_max_chars: int = 4_000_000  # the held-out text evaluated per run (the first documents held out)

    def __post_init__(self) -> None:
        _at_least("text.max_docs", self.max_docs, 1)
        _at_least("text.heldout_every", self.heldout_every, 2)
        _at_least("text.heldout_max_chars", self.heldout_max_chars, 1)


@dataclass
class GridRules:
    """The grid's design rules, checked against every planned run before any training
    (harness/tiny/grid.py). Batch: every run uses the same batch of batch_size x seq_len tokens, so
    a small budget on a large shape buys few steps; min_steps keeps each run a schedule (warm-up,
    then a cosine) rather than a handful of updates. Depth: the shapes' aspect ratio
    hidden_size / num_layers stays in a band, so that depth grows with width instead of jumping
    (Kaplan et al. 2020, section 3.1: at fixed N the loss moves a few percent over a wide band of
    shapes, and more outside it); heads keep at least min_head_dim dimensions. fit-law checks the
    depth rule against the data as well: approach 3's residuals by depth."""
    min_steps: int = 100
    aspect_ratio: List[float] = field(default_factory=lambda: [16.0, 64.0])  # hidden_size / num_layers
    min_head_dim: int = 8
    # True: a run that breaks a rule stops the build before training, naming it. False: the grid is
    # built anyway, grid.json lists every break and the law carries a warning (a smoke grid)
    enforce: bool = True

    def __post_init__(self) -> None:
        _at_least("rules.min_steps", self.min_steps, 1)
        _at_least("rules.min_head_dim", self.min_head_dim, 1)
        if len(self.aspect_ratio) != 2 or not 0 < self.aspect_ratio[0] <= self.aspect_ratio[1]:
            raise ValueError(f"rules.aspect_ratio={list(self.aspect_ratio)}: need [low, high] with 0 < low <= high")


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
    lr_sweep: Optional[LearningRateSweep] = None
    rules: GridRules = field(default_factory=GridRules)
    # Where the grid trains and on what (the defaults: the CPU, the tiny family's tokenizer and text)
    device: str = "cpu"  # e.g. cuda on a lab GPU
    precision: str = "fp32"  # bf16: training under bf16 autocast (weights and optimiser in fp32)
    tokenizer: Optional[str] = None  # a path or hub id (None: the family's, in family_dir)
    text: Optional[GridText] = None  # the grid's own text and held-out split (None: the family's text + extra_packages)
    # the training settings are the family's (TrainingSettings); every run has its own warm-up and
    # cosine over its own tokens
    eval_batch_size: int = 16
    max_epochs: float = 4.0  # no token seen more often (Muennighoff et al. 2023: ~4 epochs ~ fresh data)
    extra_packages: List[str] = field(default_factory=lambda: ["numpy", "scipy"])  # docstrings added to train text
    extra_max_chars: Optional[int] = 4_000_000
    extra_heldout_every: int = 20  # 1 in N extra documents held out by hash (the family's rule), for the in-distribution loss
    # the in-distribution text's first N UTF-8 bytes (the family's held-out split comes first); None: all of it
    # (421k chars with numpy and scipy: scoring it is most of a small run's time)
    in_distribution_max_bytes: Optional[int] = None
    checkpoint_every: int = 100  # steps between resume points
    threads: Optional[int] = None
    only_budgets: Optional[List[int]] = None  # indices into budgets (None: all)
    force: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("max_epochs", self.max_epochs)
        _at_least("checkpoint_every", self.checkpoint_every, 1)
        _one_of("precision", self.precision, GRID_PRECISIONS)
        _at_least("extra_heldout_every", self.extra_heldout_every, 2)


@dataclass
class LawFitConfig:
    grid_name: str = "tiny"  # the grid's `name` (conf/grid/<name>.yaml)
    grid_dir: str = "${models_dir}/grid/${grid_name}"  # where build-grid wrote grid.json
    # A CSV of published runs instead of a grid (columns N, D or C, loss; optional budget, seed, name),
    # so any published grid is fitted by the same code; out_dir then names it by grid_name
    table: Optional[str] = None
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
