import json
import subprocess
import sys

import pytest

import harness.scenarios.single as single
from harness.results.store import iter_records, read_record, run_dir
from harness.run import run_point


def test_point_writes_valid_record(run_cfg):
    cfg = run_cfg("model=tiny-s")
    rec = run_point(cfg)
    assert rec.status == "ok", rec.error
    path = run_dir(cfg.results_dir, rec.run_id) / "record.json"
    again = read_record(path)  # validates against the schema
    assert again.run_id == rec.run_id
    assert again.quality.heldout_loss_nats > 0 and again.quality.bits_per_byte > 0
    lat = again.latency
    assert lat.ttft_ms.n == len(lat.ttft_ms.samples) == lat.tpot_ms.n >= 3
    assert len(lat.itl_ms.samples) == lat.ttft_ms.n * (8 - 1)  # quick bench: 8 new tokens
    assert lat.tpot_ms.ci_low <= lat.tpot_ms.median <= lat.tpot_ms.ci_high
    assert again.memory.weights_bytes > 0 and again.memory.peak_rss_bytes > 0
    assert again.hardware.cpu_model and again.software["torch"] and again.software["transformers"]
    assert again.model.non_embedding_params > 0 and again.model.train_tokens > 0
    assert not list(path.parent.glob("*.tmp")), "no temp file left behind"


def test_loss_falls_with_size_in_records(run_cfg):
    losses = [run_point(run_cfg(f"model={m}")).quality.heldout_loss_nats for m in ("tiny-xs", "tiny-s", "tiny-m")]
    assert losses[0] > losses[1] > losses[2]


def test_rerun_skips_and_force_recomputes(run_cfg, monkeypatch):
    first = run_point(run_cfg("model=tiny-xs"))
    calls = []
    real = single.measure_point
    monkeypatch.setattr(single, "measure_point", lambda *a, **k: calls.append(1) or real(*a, **k))
    skipped = run_point(run_cfg("model=tiny-xs"))
    assert calls == [] and skipped == first
    forced = run_point(run_cfg("model=tiny-xs", "force=true"))
    assert calls == [1] and forced.run_id == first.run_id
    assert read_record(run_dir(forced.config["results_dir"], forced.run_id) / "record.json") == forced


def test_probes_are_measured_once_per_machine_and_settings(run_cfg, monkeypatch):
    calls = []
    real = single.run_probes
    monkeypatch.setattr(single, "run_probes", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    first = run_point(run_cfg("model=tiny-xs", "hardware.probe_repeats=2"))
    second = run_point(run_cfg("model=tiny-s", "hardware.probe_repeats=2"))
    assert len(calls) == 1 and first.hardware.probes == second.hardware.probes
    assert len(first.hardware.probes.samples_bandwidth) == 2
    run_point(run_cfg("model=tiny-xs", "hardware.probe_repeats=3"))  # other settings: measured again
    assert len(calls) == 2 and calls[1][0] == 3


def test_missing_model_is_a_failed_record_with_build_hint(run_cfg, tmp_path):
    rec = run_point(run_cfg("model=tiny-l", f"model.path={tmp_path}/nowhere"))
    assert rec.status == "failed"
    assert "meekbench build-tiny" in rec.error and "nowhere" in rec.error


def test_a_context_longer_than_the_model_is_a_failed_point_naming_both(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "quality.context_length=100000"))
    assert rec.status == "failed" and "quality.context_length=100000" in rec.error and "128 positions" in rec.error
    assert rec.quality is None  # nothing scored past the model's context


def test_bad_dtype_is_refused_before_the_model_loads_naming_valid_values(run_cfg, tmp_path):
    from harness.config import ConfigValueError

    with pytest.raises(ConfigValueError, match=r"variant\.dtype='float8'; valid: .*bfloat16"):
        run_point(run_cfg("model=tiny-xs", "variant.dtype=float8"))
    assert not (tmp_path / "results").exists()  # a bad invocation, not a failed record


def test_remote_code_is_refused_by_default(run_cfg, models_dir, tmp_path):
    import shutil

    d = tmp_path / "remote"
    shutil.copytree(models_dir / "tiny" / "tiny-xs", d)
    config = json.loads((d / "config.json").read_text())
    config["model_type"] = "meek_custom"  # unknown to transformers: only the repo's own code could load it
    config["auto_map"] = {"AutoConfig": "custom.CustomConfig", "AutoModelForCausalLM": "custom.CustomModel"}
    (d / "config.json").write_text(json.dumps(config))
    (d / "custom.py").write_text("raise SystemExit('remote code ran')\n")
    rec = run_point(run_cfg("model=tiny-xs", f"model.path={d}", "model.name=remote"))
    assert rec.status == "failed"
    assert "trust_remote_code" in rec.error


@pytest.mark.slow
def test_cli_sweep_and_bad_invocation(models_dir, tmp_path):
    results = tmp_path / "cli-results"
    common = [f"models_dir={models_dir}", f"results_dir={results}", "bench=quick", "quality.max_bytes=5000",
              "hardware.probe=false"]
    out = subprocess.run([sys.executable, "-m", "harness", "run", "-m", "model=tiny-xs,tiny-s", *common],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    recs = list(iter_records([results]))
    assert sorted(r.model.name for r in recs) == ["tiny-s", "tiny-xs"]
    assert all(r.status == "ok" for r in recs)
    bad = subprocess.run([sys.executable, "-m", "harness", "run", "no_such_key=1", *common],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "no_such_key" in bad.stderr
    unknown = subprocess.run([sys.executable, "-m", "harness", "rnu"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "run" in unknown.stderr


def test_a_sweep_whose_points_failed_runs_them_all_then_exits_1_listing_them(models_dir, tmp_path):
    """tiny-l is not in the reduced family: its point fails (a record saying why), tiny-xs still runs and is
    ok, and the command exits 1 naming the failed point."""
    results = tmp_path / "results"
    out = subprocess.run([sys.executable, "-m", "harness", "run", "-m", "model=tiny-l,tiny-xs", f"models_dir={models_dir}",
                          f"results_dir={results}", "bench=quick", "quality.max_bytes=5000", "hardware.probe=false"],
                         capture_output=True, text=True, timeout=600)
    statuses = {r.model.name: r.status for r in iter_records([results])}
    assert statuses == {"tiny-l": "failed", "tiny-xs": "ok"}
    assert out.returncode == 1, out.stderr[-2000:]
    assert "1 point(s) failed" in out.stderr and "tiny-l--fp32" in out.stderr and "ModelNotFoundError" in out.stderr
