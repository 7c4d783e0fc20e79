#!/usr/bin/env python
"""Every meekbench command given bad input, as a new user would type it, and what it did: the exit
status, the last line it printed, and what it wrote. Writes docs/bad-input.md:

    python scripts/bad_inputs.py > docs/bad-input.md

Each case runs in a scratch folder (results_dir and models_dir point there, except where the case
is the repository's own models/), so nothing already recorded is touched. A case "wrote" a path
when it is new in the scratch folder afterwards, Hydra's job log folder (<results_dir>/logs) aside.
About 3 minutes on 2 cores (each command imports torch).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
MEEKBENCH = [str(Path(sys.executable).parent / "meekbench")]  # the installed entry point, as a user types it
# (what is wrong, the arguments after `meekbench`; {T} is the scratch folder)
CASES: list[tuple[str, str]] = [
    ("no command", ""),
    ("an unknown command", "bench"),
    ("a model that is not built", "run model=tiny-m models_dir={T}/no-models results_dir={T}/r"),
    ("an unknown model", "run model=tiny-q results_dir={T}/r"),
    ("an unknown variant", "run model=tiny-xs variant=int3 results_dir={T}/r"),
    ("an unknown engine", "run model=tiny-xs engine=tensorrt results_dir={T}/r"),
    ("a variant the engine cannot run", "run model=tiny-s engine=onnxruntime variant=bf16 results_dir={T}/r"),
    ("a mistyped key", "run model=tiny-xs bench.new_token=8 results_dir={T}/r"),
    ("a mistyped key, added with + as Hydra's hint says", "run model=tiny-xs +bench.new_token=8 results_dir={T}/r"),
    ("a string for a number", "run model=tiny-xs bench.repeats=three results_dir={T}/r"),
    ("no batch size to time", "run model=tiny-xs bench.batch_sizes=[] results_dir={T}/r"),
    ("a context longer than the model's positions", "run model=tiny-xs quality.context_length=100000 results_dir={T}/r"),
    ("a server URL with the local scenario", "run model=tiny-xs scenario.target.url=http://127.0.0.1:9/v1 results_dir={T}/r"),
    ("a device this machine lacks", "run model=tiny-xs hardware.device=cuda results_dir={T}/r"),
    ("an unknown lm-eval suite", "run model=tiny-xs eval=mmlu-pro results_dir={T}/r"),
    ("a sweep with one bad point among good ones", "run -m model=tiny-xs,tiny-m eval=none models_dir={T}/half-models "
     "bench.repeats=1 bench.min_iterations=1 quality.max_bytes=2000 results_dir={T}/sweep"),
    ("summary of a missing folder", "summary results_dir={T}/nothing-here"),
    ("summary of a file", "summary results_dir={T}/a-file"),
    ("summary of a malformed record", "summary results_dir={T}/malformed"),
    ("report on a mistyped folder", "report {T}/nothing-here"),
    ("report on a file", "report {T}/a-file"),
    ("report on a malformed record", "report {T}/malformed"),
    ("fit-law on a grid that was never built", "fit-law grid_name=nosuchgrid results_dir={T}/r"),
    ("build-grid with an unknown grid", "build-grid grid=nosuchgrid results_dir={T}/r models_dir={T}/m"),
    ("build-tiny with a model not in the family", "build-tiny only=[tiny-q] results_dir={T}/r models_dir={T}/m"),
    ("an unknown projector scenario", "project projector=optimistic results_dir={T}/r"),
    ("a measured law file that does not exist", "project projector=measured projector.law.measured_path={T}/law.json "
     "results_dir={T}/r"),
    ("a malformed measured law file", "project projector=measured projector.law.measured_path={T}/a-file "
     "results_dir={T}/r"),
]


def _scratch(t: Path) -> None:
    (t / "a-file").write_text("not a folder\n")
    bad = t / "malformed" / "runs" / "tiny-xs--fp32--x--0"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text('{"schema_version": 3, "model": ')
    # half-models: tiny-xs built (copied from models/), tiny-m not
    src = ROOT / "models" / "tiny"
    dst = t / "half-models" / "tiny"
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.name != "tiny-m":
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, dst / p.name)


def _files(t: Path) -> set[str]:
    return {str(p.relative_to(t)) for p in t.rglob("*") if p.is_file() and "logs" not in p.relative_to(t).parts}


def _said(out: str) -> str:
    """meekbench's own line, with what it points at: Hydra's message above it, or the failures below."""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip() and not ln.startswith("[20")]  # log lines aside
    if not lines:
        return "(nothing)"
    if any(ln.startswith("Traceback") for ln in lines):
        return "TRACEBACK: " + lines[-1]
    at = next((i for i, ln in enumerate(lines) if ln.startswith("meekbench:")), len(lines) - 1)
    said = lines[at]
    if "Hydra's message above" in said:
        said = next((ln for ln in lines[:at] if not ln.startswith(("Set the environment", "Error executing"))),
                    "") + " / " + said
    elif "failed" in said and at + 1 < len(lines):
        said += " " + lines[at + 1]
    return said if len(said) <= 400 else said[:397] + "..."


def run_case(what: str, args: str, t: Path) -> dict[str, str]:
    before = _files(t)
    argv = MEEKBENCH + [a.replace("{T}", str(t)) for a in args.split()]
    start = time.monotonic()
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    wrote = sorted(_files(t) - before)
    return {"what is wrong": what, "command": f"`meekbench {args}`".replace("{T}", "T"), "exit": str(p.returncode),
            "what it printed (its own line, or the last)": _said(p.stderr + "\n" + p.stdout).replace("|", "\\|")
            .replace(str(t), "T"),
            "wrote": ", ".join(w for w in wrote)[:120] or "nothing", "s": f"{time.monotonic() - start:.0f}"}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="meekbench-bad-") as tmp:
        t = Path(tmp)
        _scratch(t)
        for what, args in CASES:
            rows.append(run_case(what, args, t))
            print(json.dumps(rows[-1]), file=sys.stderr)
    sys.stdout.write("\n".join([
        "# What each command does with bad input", "",
        "(Part of meekbench's documentation; start at the [README](../README.md).) Generated by "
        "`python scripts/bad_inputs.py > docs/bad-input.md`; do not edit it by hand. T is a scratch folder. "
        "Exit 2: the invocation was refused before anything loaded; exit 1: it ran, and something failed "
        "(a sweep runs every point first, then lists the failures); 0: it did what was asked.", "",
        pd.DataFrame(rows).to_markdown(index=False), ""]))


if __name__ == "__main__":
    main()
