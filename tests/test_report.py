"""Results store, resume after a kill, concurrent writers, and the cross-hardware report."""
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.report import flat_table, write_report
from harness.report.hardware import cross_hardware
from harness.results.comparison import Judging
from harness.results.store import RecordError, iter_records, load_records, read_record, write_record
from harness.results.schema import SCHEMA_VERSION
from harness.run import run_point

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def two_machines(models_dir, tmp_path_factory):
    """Records from two 'machines' (hardware labels) in two results directories."""
    from tests.conftest import compose_config

    dirs = []
    for label, price in (("machine-a", 0.1), ("machine-b", 0.4)):
        d = tmp_path_factory.mktemp(label)
        for model, variant in (("tiny-xs", "fp32"), ("tiny-s", "fp32"), ("tiny-s", "bnb-int8")):
            rec = run_point(compose_config("run", [
                f"models_dir={models_dir}", f"results_dir={d}", f"model={model}", f"variant={variant}",
                "bench=quick", "quality.max_bytes=5000", f"hardware.label={label}",
                f"hardware.price_per_hour_usd={price}"]))
            assert rec.status == "ok", rec.error
        dirs.append(d)
    return dirs


def test_merge_two_directories_and_skip_bad_files(two_machines, tmp_path):
    a, b = two_machines
    bad = a / "runs" / "garbage"
    bad.mkdir()
    (bad / "record.json").write_text('{"schema_version": 1, "run_id": "x"')  # truncated
    old = a / "runs" / "old"
    old.mkdir()
    (old / "record.json").write_text(json.dumps({"schema_version": 0}))
    foreign = a / "runs" / "foreign"
    foreign.mkdir()
    (foreign / "record.json").write_text(json.dumps({"hello": "world"}))
    try:
        report = write_report([a, b], tmp_path / "rep")
        text = report.read_text()
        for name in ("garbage", "old", "foreign"):
            assert f"runs/{name}/record.json" in text
        assert "schema_version 0" in text
        table = pd.read_parquet(tmp_path / "rep" / "points.parquet")
        assert len(table) == 6 and set(table["hardware.label"]) == {"machine-a", "machine-b"}
        assert len(pd.read_csv(tmp_path / "rep" / "points.csv")) == 6
        pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
        assert any(p.startswith("pareto-latency-machine-a") for p in pngs)
        assert any(p.startswith("pareto-memory-machine-b") for p in pngs)
        assert "bnb-int8" in text and "machine-a" in text and "machine-b" in text
    finally:
        for d in (bad, old, foreign):
            (d / "record.json").unlink()
            d.rmdir()


def test_cross_hardware_table_from_two_machines(two_machines):
    """Each model x engine x variant measured on both machines: a row per machine, its TPOT the
    median of its own samples, its dollars per million tokens its own price at its own rate."""
    records = load_records(two_machines).records
    table = cross_hardware(records, Judging())
    assert len(table) == 6 and set(table["hardware"]) == {"machine-a", "machine-b"}
    assert set(zip(table["model"], table["variant"])) == {("tiny-xs", "fp32"), ("tiny-s", "fp32"),
                                                         ("tiny-s", "bnb-int8")}
    for r in records:
        row = table[(table["hardware"] == r.hardware.label) & (table["model"] == r.model.name)
                    & (table["variant"] == r.variant.name)].iloc[0]
        sc = r.latency.scenarios[0]
        tpot = pd.Series(sc.tpot_ms.samples).median()
        assert float(row["TPOT ms"].split(" ")[0]) == pytest.approx(tpot, rel=1e-3)
        rate = sc.batch_size * 1000 / tpot
        assert row["out tok/s"] == pytest.approx(rate, rel=1e-3)
        price = {"machine-a": 0.1, "machine-b": 0.4}[r.hardware.label]
        assert float(row["$/M tok"].split(" ")[0]) == pytest.approx(price / 3600 / rate * 1e6, rel=1e-3)
        assert pd.isna(row["J/M tok"])  # no energy counter on these VMs: blank, not estimated
    one_machine = [r for r in records if r.hardware.label == "machine-a"]
    assert cross_hardware(one_machine, Judging()).empty  # nothing to compare across


def test_table_equals_recomputation_from_records(two_machines):
    g = load_records(two_machines)
    df = flat_table(g.records).set_index("run_id")
    for r in g.records:
        row = df.loc[r.run_id]
        samples = r.latency.tpot_ms.samples
        assert row["latency.tpot_ms.median"] == pytest.approx(pd.Series(samples).median())
        assert row["quality.heldout_loss_nats"] == r.quality.heldout_loss_nats
        assert row["memory.weights_bytes"] == r.memory.weights_bytes
        assert row["model.name"] == r.model.name


def test_record_errors_name_the_file(tmp_path):
    p = tmp_path / "record.json"
    p.write_text(json.dumps({"schema_version": 1, "run_id": "x"}))
    with pytest.raises(RecordError, match=str(p)):
        read_record(p)


def test_version_1_records_are_read_with_their_latency_renamed(tmp_path):
    from tests.conftest import record_template

    data = record_template("old", 1e5, 4.0).model_dump(mode="json")
    stats = {"n": 2, "median": 1.0, "p90": 1.0, "p99": 1.0, "mean": 1.0, "stdev": 0.0, "cv": 0.0,
             "ci_low": 1.0, "ci_high": 1.0, "ci_level": 0.95, "samples": [1.0, 1.0]}
    data |= {"schema_version": 1, "latency": {
        "prefill_ms": stats, "decode_ms_per_token": stats, "decode_tokens_per_s": 1000.0,
        "scenarios": [{"prompt_tokens": 16, "batch_size": 1, "new_tokens": 8, "iterations": 2,
                       "prefill_ms": stats, "decode_ms_per_token": stats, "decode_tokens_per_s": 1000.0}],
        "timed_path": "generate()", "clock": "perf_counter", "threads": 2}}
    del data["upgraded_from"]
    path = tmp_path / "record.json"
    path.write_text(json.dumps(data))
    rec = read_record(path)
    assert rec.schema_version == SCHEMA_VERSION and rec.upgraded_from == 1
    assert rec.latency.ttft_ms.median == 1.0 and rec.latency.itl_ms.samples == [1.0, 1.0]
    assert rec.latency.tpot_ms is None and "version 1" in rec.latency.itl_ms.ci_resamples
    assert rec.latency.scenarios[0].requests == 2 and rec.latency.scenarios[0].rounds == 1


def _write_many(args):
    results_dir, template, worker, n = args
    from harness.results.schema import RunRecord

    for i in range(n):
        rec = RunRecord.model_validate(template | {"run_id": f"w{worker}-{i}"})
        write_record(results_dir, rec)
        shared = RunRecord.model_validate(template | {"run_id": "shared", "duration_s": float(worker)})
        write_record(results_dir, shared)  # everyone overwrites one record too


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(two_machines, tmp_path):
    template = load_records([two_machines[0]]).records[0].model_dump(mode="json")
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_write_many, [(str(tmp_path), template, w, 15) for w in range(4)])
    recs = list(iter_records([tmp_path]))
    assert all(not hasattr(r, "reason") for r in recs), [r for r in recs if hasattr(r, "reason")]
    assert len(recs) == 4 * 15 + 1
    assert not list(tmp_path.glob("runs/*/*.tmp"))


@pytest.mark.slow
def test_sweep_killed_mid_point_resumes_every_point_once(models_dir, tmp_path):
    results = tmp_path / "results"
    args = [sys.executable, "-m", "harness", "run", "-m", "model=tiny-xs,tiny-s,tiny-m",
            f"models_dir={models_dir}", f"results_dir={results}", "bench=quick", "bench.min_seconds=1.5",
            "quality.max_bytes=5000", "hardware.probe=false"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(results.glob("runs/*/record.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {p.parent.name: p.stat().st_mtime_ns for p in results.glob("runs/*/record.json")}
    assert 1 <= len(first) < 3
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    recs = [r for r in iter_records([results])]
    assert sorted(r.model.name for r in recs) == ["tiny-m", "tiny-s", "tiny-xs"]
    assert all(r.status == "ok" for r in recs)
    for run_id, mtime in first.items():  # points recorded before the kill were skipped, not redone
        assert (results / "runs" / run_id / "record.json").stat().st_mtime_ns == mtime


def test_the_measured_page_is_generated_from_the_records_and_step_times(tmp_path):
    import importlib.util

    from tests.conftest import record_template

    spec = importlib.util.spec_from_file_location("measured_page", ROOT / "scripts" / "measured_page.py")
    measured_page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measured_page)
    from dataclasses import replace

    from harness.blocks import Memory

    base = record_template("tiny-xs", 1e5, 4.0).model_copy(update={"memory": Memory(weights_bytes=400)})
    write_record(tmp_path, base)
    write_record(tmp_path, base.model_copy(update={  # a llama.cpp variant that ran, and one that was refused
        "run_id": "tiny-xs--llamacpp-gguf-q8_0--synthetic--1", "memory": Memory(weights_bytes=100),
        "engine": {"name": "llamacpp", "version": "0.3.36"},
        "variant": replace(base.variant, name="gguf-q8_0", kind="gguf", method="Q8_0")}))
    write_record(tmp_path, base.model_copy(update={
        "run_id": "tiny-xs--bnb-nf4--synthetic--2", "status": "unsupported", "error": "no 4-bit kernel here",
        "variant": replace(base.variant, name="bnb-nf4", kind="quantise", library="bitsandbytes")}))
    steps = tmp_path / "demo-steps.tsv"
    steps.write_text("set-up\tset-up\t1000.0\n1/9\tthe family\t1090.5\n9/9\treport\t1190.0\n")
    with pytest.raises(SystemExit, match="no end mark"):
        measured_page.page(tmp_path)
    steps.write_text(steps.read_text() + "end\tend\t1200.0\n")
    text = measured_page.page(tmp_path)
    assert "It took 3 min 20 s" in text and "1 min 30 s" in text and "1 min 40 s" in text
    assert "| tiny-xs " in text and "2026-01-01" in text and "x, 2 logical cores" in text
    matrix = text.split("## Support matrix")[1].split("## Variant scorecards")[0]
    assert "| `gguf-q8_0 · llamacpp` | runs on tiny-xs (weights 0.25x fp32) |" in matrix
    assert "| `bnb-nf4` | `unsupported` on tiny-xs: no 4-bit kernel here |" in matrix
    assert "llamacpp 0.3.36" in matrix and "| `fp32` |" not in matrix  # the reference baseline is no row
    assert "### tiny-xs on synthetic" in text and "gguf-q8_0" in text.split("## Variant scorecards")[1]


def test_prefill_and_decode_against_depth(run_cfg, tmp_path):
    """llama-bench's two axes from one point timed at two prompt lengths: prefill = batch x P / TTFT,
    decode = batch / TPOT, per depth; drawn in the report, and absent for a one-depth point."""
    from harness.report.depth import depth_table

    rec = run_point(run_cfg("model=tiny-xs", "variant=fp32", "bench.prompt_tokens=[8,96]"))
    table = depth_table([rec])
    assert list(table["depth (prompt tokens)"]) == [8, 96]
    for sc, (_, row) in zip(rec.latency.scenarios, table.iterrows()):
        assert row["prefill tok/s"] == pytest.approx(sc.prompt_tokens * 1000 / sc.ttft_ms.median, abs=0.1)
        assert row["decode tok/s"] == pytest.approx(1000 / sc.tpot_ms.median, abs=0.01)
    report = write_report([tmp_path / "results"], tmp_path / "rep")
    assert "Prefill and decode throughput against context depth" in report.read_text()
    assert (tmp_path / "rep" / "depth-decode.png").exists()
    one = run_point(run_cfg("model=tiny-xs", "variant=bf16"))
    assert depth_table([one]).empty
