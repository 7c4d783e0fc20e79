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
    source: str = MISSING  # "local" (a directory) or "hub" (a hub id)
    path: Optional[str] = None  # local directory, when source=local
    hub_id: Optional[str] = None  # when source=hub
    revision: str = "main"
    family: str = ""
    params: Optional[int] = None  # declared total parameters (the card's count wins for local models)
    non_embedding_params: Optional[int] = None
    train_tokens: Optional[int] = None
    trust_remote_code: bool = False
    use_safetensors: bool = True
    distilled_from: Optional[str] = None  # hub id or name of the teacher, for pre-distilled checkpoints
    build_hint: str = ""  # what to run when a local model is missing


@dataclass
class VariantConfig:
    name: str = MISSING
    kind: str = "baseline"  # baseline | quantise | distil
    dtype: str = "float32"  # weights / compute dtype of the loaded model
    method: Optional[str] = None  # quantisation or distillation method name
    options: Dict[str, Any] = field(default_factory=dict)


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
    warmup: int = 2
    min_iterations: int = 5
    min_seconds: float = 2.0
    max_iterations: int = 200
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


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    variant: VariantConfig = field(default_factory=VariantConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    eval: Dict[str, Any] = field(default_factory=dict)  # lm-eval suite (conf/eval/)
    results_dir: str = "results"
    models_dir: str = "models"
    force: bool = False  # recompute points whose ok record exists
    offline: Optional[bool] = None  # None: follow HF_HUB_OFFLINE / probe the hub quickly
    seed: int = 0


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
    weight_decay: float = 0.1
    seed: int = 0
    threads: Optional[int] = None
    only: Optional[List[str]] = None  # build only these names
    force: bool = False
    models: List[TinyModelSpec] = field(default_factory=list)


@dataclass
class LawConfig:
    source: str = "paper"  # paper | chinchilla | epoch | measured
    L0: float = 1.7
    A: float = 1070.0
    alpha: float = 0.155


@dataclass
class GrowthConfig:
    g_i: float = 3.57  # frontier investment, x per year
    g_h: float = 1.4  # hardware price-performance, x per year
    g_alg: float = 2.8  # algorithmic efficiency, x per year


@dataclass
class InferenceConfig:
    price_per_token_usd: float = 1e-6  # what the meek actor pays per generated token
    g_cost: float = 9.0  # yearly fall in the cost of a fixed capability (Cottier et al. 2025)
    flops_per_param: float = 2.0


@dataclass
class ProjectorConfig:
    name: str = MISSING
    law: LawConfig = field(default_factory=LawConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    budget_usd: float = 1000.0  # the meek actor's fixed training budget
    # FLOP per dollar: default is an H100 (989 dense bf16 TFLOP/s) at $2/h and 40% utilisation.
    flop_per_dollar: float = 7.1e17
    flop_per_dollar_from_hardware: bool = False  # measured matmul FLOP/s / price_per_hour_usd
    price_per_hour_usd: Optional[float] = None
    start_year: float = 2025.0
    horizon_years: float = 10.0
    steps_per_year: int = 4
    error_rate: float = 0.05  # Wald test error rate
    p_steps: List[int] = field(default_factory=lambda: [1, 5, 20])
    family: str = "tiny"  # whose baseline points the measured law is fitted to
    baseline_variant: str = "fp32"
    task: Optional[str] = None  # lm-eval task whose accuracy feeds the sigmoid (None: first one found)
    bootstrap: int = 200
    seed: int = 0


@dataclass
class ProjectConfig:
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    results_dirs: List[str] = field(default_factory=lambda: ["${results_dir}"])
    out_dir: str = "${results_dir}/projections/${projector.name}"
    results_dir: str = "results"
    models_dir: str = "models"


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(name="build_tiny_schema", node=TinyBuildConfig)
    cs.store(name="project_schema", node=ProjectConfig)


register()
