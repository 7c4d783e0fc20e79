"""lm-eval on the loaded model: the offline ci suite, parity with the lm_eval CLI, bad input."""
import json
import os
import socket
import subprocess
import sys

import pytest
from rich.console import Console

from harness.models import hub_is_offline
from harness.run import run_point
from harness.report.summary import summary_table
from harness.tiny.tasks import TASKS, generate_items


@pytest.fixture(scope="module")
def evaluated(models_dir, tmp_path_factory):
    from tests.conftest import compose_config

    results = tmp_path_factory.mktemp("eval-results")
    recs = {}
    for m in ("tiny-xs", "tiny-m"):
        recs[m] = run_point(compose_config("run", [f"models_dir={models_dir}", f"results_dir={results}",
                                                   f"model={m}", "eval=ci", "bench=quick", "quality.max_bytes=5000"]))
    return recs


def test_generator_is_deterministic_and_has_three_kinds():
    vocab = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa"]
    text = "\n\n".join(" ".join(vocab[(i * j + j) % 7] for j in range(120)) for i in range(12))
    a, b = generate_items(text, seed=0), generate_items(text, seed=0)
    assert a == b and set(a) == set(TASKS)
    assert all(len(a[t]) > 0 for t in TASKS)
    flat = " ".join(text.split())
    for item in a["meek_ci_mc"]:
        truth = item["choices"][item["label"]]
        assert item["context"] + truth in flat  # the truth is the text that follows the context
        assert len(set(item["choices"])) == 4  # three distinct distractors, none the truth
        for choice in item["choices"]:  # each a reordering of the truth's words: unigrams cannot help
            assert sorted(choice.split()) == sorted(truth.split())
    assert {item["label"] for item in a["meek_ci_mc"]} == {0, 1, 2, 3}  # the truth's place is shuffled
    assert generate_items(text, seed=1)["meek_ci_mc"] != a["meek_ci_mc"]  # and the seed decides it


@pytest.mark.slow
def test_ci_suite_in_the_record(evaluated):
    for rec in evaluated.values():
        assert rec.status == "ok", rec.error
        q = rec.quality
        assert set(q.tasks) == set(TASKS) and q.lm_eval_version
        mc = q.tasks["meek_ci_mc"]
        assert 0 <= mc.metrics["acc"] <= 1 and mc.metrics["acc_stderr"] > 0 and mc.n_samples > 100
        assert mc.n_shot == 0 and mc.version
        assert q.tasks["meek_ci_rolling"].metrics["bits_per_byte"] > 0
        for t in TASKS:
            lines = open(f"{q.samples_path}/{t}.jsonl").read().splitlines()
            assert len(lines) == q.tasks[t].n_samples
    bpb = {m: r.quality.tasks["meek_ci_rolling"].metrics["bits_per_byte"] for m, r in evaluated.items()}
    assert bpb["tiny-m"] < bpb["tiny-xs"]


@pytest.mark.slow
def test_parity_with_lm_eval_command_line(evaluated, models_dir, tmp_path):
    rec = evaluated["tiny-xs"]
    out = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={models_dir}/tiny/tiny-xs",
         "--device", "cpu", "--tasks", "meek_ci_mc,meek_ci_rolling", "--include_path", f"{models_dir}/tiny/tasks",
         "--batch_size", "16", "--output_path", str(tmp_path / "cli")],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "HF_DATASETS_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    cli = json.loads(next((tmp_path / "cli").rglob("results_*.json")).read_text())["results"]
    assert cli["meek_ci_mc"]["acc,none"] == pytest.approx(rec.quality.tasks["meek_ci_mc"].metrics["acc"], abs=1e-9)
    assert cli["meek_ci_mc"]["acc_norm,none"] == pytest.approx(rec.quality.tasks["meek_ci_mc"].metrics["acc_norm"],
                                                               abs=1e-9)
    assert cli["meek_ci_rolling"]["bits_per_byte,none"] == pytest.approx(
        rec.quality.tasks["meek_ci_rolling"].metrics["bits_per_byte"], rel=1e-6)


def test_the_task_directory_moves_with_the_models_and_keeps_no_path(run_cfg, models_dir, tmp_path):
    import shutil

    moved = tmp_path / "elsewhere" / "tasks"
    shutil.copytree(models_dir / "tiny" / "tasks", moved)
    for task_file in moved.iterdir():
        if task_file.suffix in (".yaml", ".py", ".json"):
            assert str(models_dir) not in task_file.read_text(), task_file.name
    rec = run_point(run_cfg("model=tiny-xs", "eval=ci", "eval.limit=20", f"eval.include_path={moved}"))
    assert rec.status == "ok", rec.error
    assert set(rec.quality.tasks) == set(TASKS) and all(t.n_samples == 20 for t in rec.quality.tasks.values())
    info = json.loads((moved / "meek_ci_build.json").read_text())
    assert info["items"]["meek_ci_mc"] > 100 and len(info["heldout_sha256"]) == 64


def test_unknown_task_lists_close_matches(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "eval=ci", "eval.tasks=[meek_ci_mcq]"))
    assert rec.status == "failed" and "meek_ci_mcq" in rec.error and "meek_ci_mc" in rec.error


def test_missing_ci_data_names_the_command(run_cfg, tmp_path):
    rec = run_point(run_cfg("model=tiny-xs", "eval=ci", f"eval.include_path={tmp_path}/empty"))
    assert rec.status == "failed" and "meekbench build-tasks" in rec.error


@pytest.mark.slow
def test_summary_shows_every_task_in_the_records(evaluated):
    console = Console(record=True, width=400)
    console.print(summary_table(list(evaluated.values())))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "loss nats" in line)
    for task in TASKS:  # a column per task that has an accuracy; the rolling task has none
        has_acc = evaluated["tiny-m"].quality.tasks[task].metrics.get("acc") is not None
        assert (task in header) == has_acc, task
    mc = evaluated["tiny-m"].quality.tasks["meek_ci_mc"].metrics
    assert f"{mc['acc']:.3f} ± {mc['acc_stderr']:.3f}" in text


def test_offline_evaluation_restores_the_environment_for_later_points(run_cfg, monkeypatch):
    """Hydra's basic launcher runs a sweep in one process: an offline ci point must not leave the
    process offline for a later point that loads a hub model."""
    import datasets.config
    import huggingface_hub.constants
    import lm_eval.evaluator  # noqa: F401
    import sklearn  # noqa: F401  (its first import sets KMP_DUPLICATE_LIB_OK: a library's, not a point's)

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    env = dict(os.environ)
    rec = run_point(run_cfg("model=tiny-xs", "eval=ci", "eval.limit=20"))
    assert rec.status == "ok" and rec.quality.tasks, rec.error
    assert dict(os.environ) == env
    assert datasets.config.HF_HUB_OFFLINE is False and huggingface_hub.constants.HF_HUB_OFFLINE is False


def test_hub_is_offline_follows_the_setting_then_the_environment_then_the_network(monkeypatch):
    class Reachable:
        def close(self):
            pass

    def unreachable(*args, **kwargs):
        raise OSError("no route")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Reachable())
    assert hub_is_offline(None) is False and hub_is_offline(True) is True
    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert hub_is_offline(None) is True and hub_is_offline(False) is False
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Reachable())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_is_offline(None) is True


@pytest.mark.slow
def test_lm_eval_chatter_stays_out_of_the_terminal_unless_asked_for(models_dir, tmp_path, capfd):
    """Issue 46: lm-eval's per-task bars and its "bootstrapping for stddev" lines reached the console."""
    from tests.conftest import compose_config

    def run(extra: list[str]) -> str:
        rec = run_point(compose_config("run", [f"models_dir={models_dir}", f"results_dir={tmp_path / str(len(extra))}",
                                               "model=tiny-xs", "eval=ci", "eval.limit=8", "bench=quick",
                                               "quality.max_bytes=2000", *extra]))
        assert rec.status == "ok", rec.error
        out, err = capfd.readouterr()
        return out + err

    def bars(text: str) -> list[str]:  # transformers' weight-loading bar is the CLI's to silence (cli.py)
        return [b for b in text.replace("\n", "\r").split("\r") if "it/s]" in b and "Loading weights" not in b]

    quiet = run([])
    assert "bootstrapping for stddev" not in quiet and bars(quiet) == []
    loud = run(["eval.progress_bars=true"])
    assert "bootstrapping for stddev" in loud and bars(loud)
