"""The `ci` lm-eval suite: three tasks generated deterministically from the held-out text.

    meek_ci_rolling  loglikelihood_rolling over held-out passages (word/byte perplexity, bits per byte)
    meek_ci_cloze    LAMBADA-style: predict the next whole word after a passage (acc = greedy match)
    meek_ci_mc       4-way multiple choice: the true next words of a passage vs the same words shuffled

The task YAMLs are static files (harness/tiny/ci_tasks/); ``write_tasks`` copies them, with the
loader they name (lm-eval's ``custom_dataset``, reading the JSONL beside it), next to the items it
generates in ``<tiny dir>/tasks/``, registered with ``TaskManager(include_path=...,
include_defaults=False)``. No path is written into a task file, so the directory can move. The
held-out text is never trained on.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path

TASKS = ("meek_ci_rolling", "meek_ci_cloze", "meek_ci_mc")
STATIC = Path(__file__).resolve().parent / "ci_tasks"  # the task YAMLs and their loader
BUILD_INFO = "meek_ci_build.json"  # what the items were generated from
_WORD = re.compile(r"^[A-Za-z]{3,}$")


def _passages(text: str, min_words: int) -> list[list[str]]:
    paras = [p.split() for p in re.split(r"\n\s*\n", text)]
    return [p for p in paras if len(p) >= min_words]


def generate_items(text: str, context_words: int = 48, step: int = 8, choice_words: int = 12,
                   seed: int = 0) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    paras = _passages(text, 12)
    rolling = [{"text": " ".join(p)} for p in paras if len(p) >= 30]
    cloze, mc = [], []
    for pi, words in enumerate(paras):
        for i in range(min(context_words // 2, len(words) - 1), len(words) - choice_words, step):
            context = " ".join(words[max(0, i - context_words):i])
            if _WORD.match(words[i]):
                cloze.append({"context": context, "target": " " + words[i]})
            truth = " " + " ".join(words[i:i + choice_words])
            # distractors: the same words in shuffled order, so unigram statistics cannot help;
            # only modelling word order in context (which grows with size) picks the truth
            distractors: list[str] = []
            span = words[i:i + choice_words]
            for _ in range(50):
                if len(distractors) == 3:
                    break
                shuffled = " " + " ".join(rng.sample(span, len(span)))
                if shuffled != truth and shuffled not in distractors:
                    distractors.append(shuffled)
            if len(distractors) < 3:
                continue
            choices = distractors + [truth]
            rng.shuffle(choices)
            mc.append({"context": context, "choices": choices, "label": choices.index(truth)})
    return {"meek_ci_rolling": rolling, "meek_ci_cloze": cloze, "meek_ci_mc": mc}


def write_tasks(heldout_path: str | Path, out_dir: str | Path, seed: int = 0) -> dict[str, int]:
    heldout_path, out = Path(heldout_path), Path(out_dir)
    if not heldout_path.exists():
        raise FileNotFoundError(f"{heldout_path} does not exist; `meekbench build-tiny` writes it")
    text = heldout_path.read_text(encoding="utf-8")
    items = generate_items(text, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for static in sorted(STATIC.glob("meek_ci_*")):
        shutil.copyfile(static, out / static.name)
    counts = {}
    for task, rows in items.items():
        (out / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        counts[task] = len(rows)
    info = {"generated_by": "meekbench build-tasks", "heldout": heldout_path.name,
            "heldout_sha256": hashlib.sha256(text.encode()).hexdigest(), "seed": seed, "items": counts}
    (out / BUILD_INFO).write_text(json.dumps(info, indent=1))
    return counts
