"""The runs a law is fitted on: a grid that `meekbench build-grid` built (grid.json), or a table of
published runs (`meekbench fit-law table=`); and what grid.json says about how the grid was built
(its lr sweep and its stated rules), checked. harness/projector/isoflop.py fits them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.projector.fit import FitError


@dataclass(frozen=True)
class Run:
    name: str
    budget: float | None  # the budget it was sized for (groups the IsoFLOP curve); None: not known
    flops: float  # exact
    n: float
    d: float
    loss: float
    seed: int = 0
    n_non_embedding: float | None = None  # the grid's runs carry it; a published table may not
    n_layers: int | None = None  # likewise (the depth check groups by it)
    loss_in_distribution: float | None = None  # on text held out from the run's own training mixture


def load_grid(path: Path) -> tuple[dict, list[Run]]:
    if not path.exists():
        built = sorted(p.parent.name for p in path.parent.parent.glob("*/grid.json"))
        raise FileNotFoundError(f"{path} does not exist: run `meekbench build-grid grid={path.parent.name}` first; "
                                f"grids built under {path.parent.parent}: {', '.join(built) or 'none'}")
    meta = json.loads(path.read_text())
    runs = [Run(r["name"], r["budget_flops"], r["flops"], r["params"], r["tokens"], r["heldout_loss_nats"], r["seed"],
                r.get("non_embedding_params"), r.get("num_layers"), r.get("heldout_in_distribution_loss_nats"))
            for r in meta["runs"] if r.get("lr_multiplier", 1.0) == 1.0]
    return meta, runs  # the lr sweep's runs stay in meta (lr_check), out of the law


TABLE_COLUMNS = "N, D or C (FLOPs, taken as 6 N D), loss; optional: budget, seed, name"


def load_table(path: Path) -> tuple[dict, list[Run]]:
    """A CSV of published runs (e.g. a paper's grid, read off its figures): the same fits as a grid.
    Without a budget column the IsoFLOP approaches (1, 2) and the extrapolation test are refused."""
    import hashlib

    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"table={path} does not exist; it needs the columns {TABLE_COLUMNS}")
    df = pd.read_csv(path)
    if "N" not in df or "loss" not in df or not ({"D", "C"} & set(df)):
        raise FitError(f"table={path} has columns {list(df.columns)}; it needs {TABLE_COLUMNS}")
    d = df["D"] if "D" in df else df["C"] / (6 * df["N"])
    c = df["C"] if "C" in df else 6 * df["N"] * d
    budget = df["budget"] if "budget" in df else [None] * len(df)
    seed = df["seed"] if "seed" in df else [0] * len(df)
    name = df["name"] if "name" in df else [f"row{i}" for i in range(len(df))]
    runs = [Run(str(nm), None if b is None else float(b), float(f), float(n), float(dd), float(loss), int(sd))
            for nm, b, f, n, dd, loss, sd in zip(name, budget, c, df["N"], d, df["loss"], seed)]
    meta = {"grid": path.stem, "text": f"published runs from the table {path}", "text_sha256":
            hashlib.sha256(path.read_bytes()).hexdigest(), "train_tokens": None, "flops_rule":
            "the table's C" if "C" in df else "6 N D", "runs": []}
    return meta, runs


def lr_check(meta: dict) -> dict | None:
    """The grid's lr sweep (one shape at one budget, the rule's lr scaled): whether the rule's lr is
    the best of the sweep, or within the seed-to-seed spread of the best (the largest gap between
    two seeds of one run at the smallest budget)."""
    sweep = [r for r in meta["runs"] if r.get("lr_multiplier", 1.0) != 1.0]
    if not sweep:
        return None
    key = (sweep[0]["shape"], sweep[0]["budget_flops"], sweep[0]["seed"])
    rows = {r.get("lr_multiplier", 1.0): r["heldout_loss_nats"] for r in meta["runs"]
            if (r["shape"], r["budget_flops"], r["seed"]) == key}
    if 1.0 not in rows:
        return {"refused": f"the rule's own run of {key[0]} at {key[1]:.3g} FLOPs is not in the grid"}
    pairs: dict[tuple, list[float]] = {}
    for r in meta["runs"]:
        if r.get("lr_multiplier", 1.0) == 1.0:
            pairs.setdefault((r["shape"], r["budget_flops"]), []).append(r["heldout_loss_nats"])
    spread = max((max(v) - min(v) for v in pairs.values() if len(v) > 1), default=None)
    best = min(rows, key=rows.get)
    behind = rows[1.0] - rows[best]
    near = best == 1.0 or (spread is not None and behind <= spread)
    return {"shape": key[0], "budget_flops": key[1], "seed": key[2], "loss_by_multiplier": sorted(rows.items()),
            "best_multiplier": best, "rule_behind_best_nats": behind, "seed_spread_nats": spread,
            "rule_near_optimum": near}


def rules_check(meta: dict) -> dict | None:
    """The grid's stated rules (build-grid's rules: min steps, aspect ratio, head size) and the runs
    that break them, as build-grid recorded; None for a grid.json written before rules were kept."""
    if "rules" not in meta:
        return None
    broken = {r["name"]: r["rule_breaks"] for r in meta["runs"] if r.get("rule_breaks")}
    return {"rules": meta["rules"], "runs": len(meta["runs"]), "broken": broken}


def confounds(meta: dict) -> list[str]:
    """What a grid's build fixes that its law's band does not carry, stated beside every use of the
    law: its data mixture against the family's, its fixed batch, its repetition (issue 42 item 6).
    A table of published runs states none (its paper does)."""
    runs = [r for r in meta.get("runs", []) if r.get("steps")]
    if meta.get("train_tokens") is None or not runs:
        return []
    out = [f"data mixture: the grid trains on {meta['text']} and is scored on "
           f"{meta.get('heldout', 'its held-out text')}, while the family and its variants train on the family's "
           "own text: a variant's optimal_compute_gain reads the family's losses on a law of another mixture (a "
           "projection carries it in its systematic term where the law also has its in-distribution fit)"]
    batches = sorted({round(r["tokens"] / r["steps"]) for r in runs})
    if len(batches) == 1:
        out.append(f"batch: a fixed {batches[0]:,} tokens per step at every budget (compute-optimal batches grow "
                   "with the budget), so the small budgets take few steps and the large ones many")
    epochs = max(r["epochs"] for r in runs)
    if epochs > 1:
        out.append(f"repetition: up to {epochs:.2f} epochs of the training text (Chinchilla's runs saw each token "
                   "about once; Muennighoff et al. 2023 find up to 4 epochs cost little, more than that does)")
    return out
