"""Task accuracy through lm-eval, on the model already loaded for this point (no second load).

The loaded (possibly quantised or distilled) model is wrapped in ``HFLM(pretrained=model, ...)``
and evaluated with ``simple_evaluate``; the batch size is fixed per suite, because padding can
change accuracy. Per-sample logs are written next to the record for pair-wise comparisons.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.results.schema import QualityBlock, TaskScore

log = logging.getLogger(__name__)

def _go_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    if "datasets" in sys.modules:  # imported already: its config read the environment at import time
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True


def task_manager(cfg: dict[str, Any]):
    from lm_eval.tasks import TaskManager

    include = cfg.get("include_path")
    if include and not Path(include).exists():
        include = None  # reported per task below, with the command that generates it
    return TaskManager(include_path=include, include_defaults=bool(cfg.get("include_defaults", True)))


def check_tasks(tm, tasks: list[str], cfg: dict[str, Any]) -> None:
    known = set(tm.all_tasks)
    for name in tasks:
        if name in known:
            continue
        from harness.tiny.tasks import TASKS as CI_TASKS

        where = cfg.get("include_path")
        if name in CI_TASKS and not (where and (Path(where) / f"{name}.yaml").exists()):
            raise FileNotFoundError(f"ci task {name!r} has no generated data under {where}; "
                                    "run `meekbench build-tasks` (or `meekbench build-tiny`) to generate it")
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        raise ValueError(f"unknown lm-eval task {name!r}; close matches: {close or 'none'}")


def _metrics(raw: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in raw.items():
        if "," not in key:
            continue
        metric, filt = key.split(",", 1)
        name = metric if filt == "none" else f"{metric}[{filt}]"
        out[name] = float(value) if isinstance(value, (int, float)) else None  # "N/A" stderr -> None
    return out


def evaluate_tasks(model, tokenizer, cfg: dict[str, Any], quality: QualityBlock, out_dir: Path,
                   offline: bool | None = None) -> None:
    if cfg.get("offline", False) or offline:
        _go_offline()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    tasks = list(cfg["tasks"])
    tm = task_manager(cfg)
    check_tasks(tm, tasks, cfg)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=int(cfg.get("batch_size", 8)))
    shots = dict(cfg.get("num_fewshot") or {})
    by_shot: dict[int, list[str]] = {}
    for t in tasks:
        by_shot.setdefault(int(shots.get(t, cfg.get("default_fewshot", 0))), []).append(t)
    log_samples = bool(cfg.get("log_samples", True))
    samples_dir = Path(out_dir) / "samples"
    for n_shot, names in sorted(by_shot.items()):
        res = simple_evaluate(model=lm, tasks=names, num_fewshot=n_shot, task_manager=tm, log_samples=log_samples,
                              limit=cfg.get("limit"), bootstrap_iters=int(cfg.get("bootstrap_iters", 100000)),
                              random_seed=0, numpy_random_seed=1234, torch_random_seed=1234,
                              fewshot_random_seed=1234)
        for name in names:
            quality.tasks[name] = TaskScore(
                metrics=_metrics(res["results"].get(name, {})),
                n_samples=res.get("n-samples", {}).get(name, {}).get("effective"),
                n_shot=res.get("n-shot", {}).get(name, n_shot),
                version=str(res.get("versions", {}).get(name)))
            if log_samples and name in res.get("samples", {}):
                samples_dir.mkdir(parents=True, exist_ok=True)
                with open(samples_dir / f"{name}.jsonl", "w") as f:
                    for s in res["samples"][name]:
                        f.write(json.dumps(s, default=str) + "\n")
    quality.lm_eval_version = metadata.version("lm_eval")
    if log_samples:
        quality.samples_path = str(samples_dir)
