"""Loads a ci task's items from the JSONL beside this file (lm-eval's `custom_dataset`), so the
task directory can move with models/: no path is baked into its YAML. `meekbench build-tasks`
copies this file and the task YAMLs next to the items it generates."""
from pathlib import Path

import datasets


def load(task: str, **metadata) -> datasets.DatasetDict:
    items = Path(__file__).resolve().parent / f"{task}.jsonl"
    if not items.exists():
        raise FileNotFoundError(f"{items} is missing: run `meekbench build-tasks` (or `meekbench build-tiny`)")
    return datasets.DatasetDict({"test": datasets.load_dataset("json", data_files=str(items), split="train")})
