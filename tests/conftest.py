"""Shared fixtures: a reduced tiny family built once per session, and Hydra composition."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from harness.config import CONF_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# transformers draws a bar for every weights load; the CLI turns it off (harness/cli.py), and so do the
# tests that load models in this process, so a failing test's captured output shows what it logged
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
from transformers.utils import logging as _hf_logging  # noqa: E402

_hf_logging.disable_progress_bar()

REDUCED = ["tiny-xs", "tiny-s", "tiny-m"]
REDUCED_TOKENS = 262_144  # 128 steps of 16 x 128: enough to order three sizes, ~30 s on 2 cores


def compose_config(name: str, overrides: list[str] | None = None) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [])


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models/ directory holding a reduced tiny family (same recipe, fewer tokens and sizes).
    MEEKBENCH_TEST_MODELS names a folder to build it in once and reuse (a developer's loop; CI builds it fresh)."""
    from harness.tiny.build import build_family

    kept = os.environ.get("MEEKBENCH_TEST_MODELS")
    root = Path(kept) if kept else tmp_path_factory.mktemp("models")
    if kept and all((root / "tiny" / name / "config.json").exists() for name in REDUCED):
        return root
    cfg = compose_config("build_tiny", [f"models_dir={root}", f"train_tokens={REDUCED_TOKENS}",
                                        f"only=[{','.join(REDUCED)}]"])
    build_family(OmegaConf.to_object(cfg))
    return root


@pytest.fixture
def run_cfg(models_dir, tmp_path):
    """Compose a `meekbench run` config against the reduced family and a fresh results dir."""
    def make(*overrides: str) -> DictConfig:
        return compose_config("run", [f"models_dir={models_dir}", f"results_dir={tmp_path / 'results'}",
                                      "bench=quick", "quality.max_bytes=20000", *overrides])
    return make


def record_template(name: str, non_embedding: float, loss: float, price: float | None = None):
    """A minimal valid RunRecord for store/projector tests (no model needed)."""
    from harness.results.schema import RunRecord

    return RunRecord.model_validate({
        "run_id": f"{name}--fp32--synthetic--0", "point_key": "0", "status": "ok",
        "created_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.0,
        "config": {"hardware": {"price_per_hour_usd": price}},
        "model": {"name": name, "source": "synthetic", "family": "tiny", "params": int(non_embedding * 1.2),
                  "non_embedding_params": int(non_embedding), "train_tokens": 1_000_000},
        "variant": {"name": "fp32", "kind": "baseline", "dtype": "float32"},
        "quality": {"heldout_loss_nats": loss},
        "hardware": {"id": "h", "label": "synthetic", "device": "cpu", "hostname": "x", "cpu_model": "x",
                     "cpu_cores_logical": 2, "ram_bytes": 1, "torch_threads": 2,
                     "probes": {"device": "cpu", "bandwidth_bytes_per_s": 1e10, "matmul_flops_per_s": 1e11,
                                "matmul_dtype": "float32", "matmul_n": 1024, "copy_bytes": 1}},
        "software": {},
    })
