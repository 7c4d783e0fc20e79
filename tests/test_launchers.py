"""Cluster launch through Hydra's submitit launcher: a real local multirun, and the SLURM preset."""
import dataclasses
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness.config import CONF_DIR
from harness.results.store import iter_records


def _compose_with_hydra(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="run", overrides=overrides, return_hydra_config=True)


def test_slurm_preset_composes_and_validates():
    cfg = _compose_with_hydra(["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
                               "hydra.launcher.account=lab", "hydra.launcher.gpus_per_node=2"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.account, launcher.gpus_per_node) == ("gpu", "lab", 2)
    assert launcher.max_num_timeout >= 1 and launcher.array_parallelism >= 1
    # every field of the preset is one the plugin's own schema knows, with a compatible type
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

    known = {f.name for f in dataclasses.fields(SlurmQueueConf)}
    assert set(launcher) <= known, f"not in submitit's SlurmQueueConf: {set(launcher) - known}"
    OmegaConf.merge(OmegaConf.structured(SlurmQueueConf), OmegaConf.to_container(launcher))  # raises on a bad type


def test_joblib_preset_composes():
    cfg = _compose_with_hydra(["hydra/launcher=joblib"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")


@pytest.mark.slow
def test_submitit_local_multirun_leaves_every_record(models_dir, tmp_path):
    results = tmp_path / "results"
    out = subprocess.run(
        [sys.executable, "-m", "harness", "run", "-m", "hydra/launcher=submitit_local",
         "model=tiny-xs,tiny-s", "variant=fp32",
         f"models_dir={models_dir}", f"results_dir={results}", "bench=quick", "quality.max_bytes=5000",
         "hardware.probe=false", "hydra.launcher.timeout_min=10"],
        capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    recs = [r for r in iter_records([results])]
    assert sorted(r.model.name for r in recs) == ["tiny-s", "tiny-xs"]
    assert all(r.status == "ok" for r in recs)
    assert list(results.glob("logs/run-multirun/*/.submitit")), "jobs ran through submitit"
