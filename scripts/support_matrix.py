#!/usr/bin/env python
"""Print the quantisation support matrix (Markdown) from the records in results directories.

Each cell says what actually happened when the variant ran on that device: `runs` (with the
weights ratio to the same model's baseline), or the record's status and reason. docs/variants.md's
matrix is this script's output on the demo's records:

    python scripts/support_matrix.py results/demo [more results dirs...] [--baseline fp32]
"""
from __future__ import annotations

import argparse

from harness.results.comparison import baseline_of, baselines, ratio
from harness.results.store import load_records


def matrix(dirs: list[str], baseline_variant: str) -> str:
    everything = load_records(dirs).records
    records = [r for r in everything if r.variant.kind == "quantise"]
    if not records:
        return f"no quantised records under {', '.join(dirs)}"
    base = baselines(everything, baseline_variant)
    devices = sorted({r.hardware.device.split(":")[0] for r in records})
    cells: dict[tuple[str, str], list[str]] = {}
    versions: dict[str, str] = {}
    for r in sorted(records, key=lambda r: (r.variant.name, r.model.name)):
        device = r.hardware.device.split(":")[0]
        if r.status == "ok":
            b = baseline_of(r, base)
            w = ratio(r.memory.weights_bytes, b.memory.weights_bytes) if b else None
            text = f"runs on {r.model.name}" + (f" (weights {w:.2f}x {baseline_variant})" if w else "")
        else:
            text = f"`{r.status}` on {r.model.name}: {r.error}"
        cells.setdefault((r.variant.name, device), []).append(text)
        if r.variant.library:
            versions[r.variant.library] = r.variant.library_version or "?"
    lines = ["| variant | " + " | ".join(devices) + " |", "|---|" + "---|" * len(devices)]
    for variant in sorted({v for v, _ in cells}):
        lines.append(f"| `{variant}` | " + " | ".join("; ".join(cells.get((variant, d), ["not run"]))
                                                  for d in devices) + " |")
    machines = sorted({f"{r.hardware.label} (torch {r.software.get('torch')})" for r in records})
    lines += ["", "Libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
              + ". Machines: " + ", ".join(machines) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--baseline", default="fp32")
    args = parser.parse_args()
    print(matrix(args.dirs, args.baseline))


if __name__ == "__main__":
    main()
