"""The support matrix: engine x variant rows, device columns, each cell what actually happened when
that variant ran there (from the records, never typed by hand)."""
from __future__ import annotations

from harness.results.comparison import baseline_of, baselines, ratio
from harness.results.schema import RunRecord, is_baseline, variant_label


def _cell(r: RunRecord, base: dict, baseline_variant: str) -> str:
    if r.status != "ok":
        return f"`{r.status}` on {r.model.name}: {r.error}"
    b = baseline_of(r, base)
    w = ratio(r.memory.weights_bytes, b.memory.weights_bytes) if b and r.memory and b.memory else None
    return f"runs on {r.model.name}" + (f" (weights {w:.2f}x {baseline_variant})" if w else "")


def support_matrix(records: list[RunRecord], baseline_variant: str = "fp32") -> str:
    """Markdown: every variant point that is not the reference baseline, by engine x variant and device."""
    points = [r for r in records if not is_baseline(r, baseline_variant)]
    if not points:
        return "No variant points in these records."
    base = baselines(records, baseline_variant)
    devices = sorted({r.hardware.device.split(":")[0] for r in points})
    cells: dict[tuple[str, str], list[str]] = {}
    libraries: dict[str, str] = {}
    for r in sorted(points, key=lambda r: (variant_label(r), r.model.name)):
        device = r.hardware.device.split(":")[0]
        cells.setdefault((variant_label(r), device), []).append(_cell(r, base, baseline_variant))
        if r.variant.library:
            libraries[r.variant.library] = r.variant.library_version or "?"
        if r.engine and r.engine.version:
            libraries[r.engine.name] = r.engine.version
    lines = ["| engine x variant | " + " | ".join(devices) + " |", "|---|" + "---|" * len(devices)]
    for label in sorted({label for label, _ in cells}):
        lines.append(f"| `{label}` | " + " | ".join("; ".join(cells.get((label, d), ["not run"])) for d in devices)
                     + " |")
    machines = sorted({f"{r.hardware.label} (torch {r.software.get('torch')})" for r in points})
    lines += ["", "Libraries and engines: " + ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()))
              + ". Machines: " + ", ".join(machines) + "."]
    return "\n".join(lines)
