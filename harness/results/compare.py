"""Reading records for comparison: load them (reporting what was skipped) and pair each point
with its baseline. Summary, report and projector all read records through here.

A point's baseline is the ok record of the same model, on the same hardware id, with the
baseline variant named in config (``fp32`` by default).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from harness.results.schema import RunRecord
from harness.results.store import Skipped, iter_records

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    records: list[RunRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def load_records(dirs: list[str | Path]) -> Loaded:
    """Every valid record under ``dirs`` (a point copied into two directories counts once);
    files that are not valid records are logged and listed in ``skipped``."""
    loaded, seen = Loaded(), set()
    for item in iter_records(dirs):
        if isinstance(item, Skipped):
            log.warning("skipped %s: %s", item.path, item.reason)
            loaded.skipped.append(item)
        elif item.run_id in seen:
            log.info("duplicate %s ignored", item.run_id)
        else:
            seen.add(item.run_id)
            loaded.records.append(item)
    return loaded


def baselines(records: list[RunRecord], baseline_variant: str) -> dict[tuple[str, str], RunRecord]:
    """The ok ``baseline_variant`` record of each (model, hardware id)."""
    return {(r.model.name, r.hardware.id): r for r in records
            if r.status == "ok" and r.variant.name == baseline_variant}


def baseline_of(record: RunRecord, base: dict[tuple[str, str], RunRecord]) -> RunRecord | None:
    """The baseline a point is compared to; None for the baseline itself or where none exists."""
    b = base.get((record.model.name, record.hardware.id))
    return None if b is None or b.run_id == record.run_id else b


def tpot_ms(r: RunRecord) -> float | None:
    """The headline time per output token (median over requests), where the point measured one."""
    return r.latency.tpot_ms.median if r.latency and r.latency.tpot_ms else None


@dataclass
class SpeedRatio:
    """Variant / baseline time per output token, and how it was obtained."""
    tpot_ratio: float
    kind: str  # "paired": interleaved inside the variant's point | "unpaired": two points' medians
    ci_low: float | None = None  # paired only: bootstrap over the interleaved pairs
    ci_high: float | None = None

    @property
    def speedup(self) -> float:
        return 1 / self.tpot_ratio


def speed_ratio(record: RunRecord, base: RunRecord | None) -> SpeedRatio | None:
    """The paired ratio measured inside the point where there is one, else the ratio of the
    point's median TPOT to its baseline point's (blocks measured apart in time: drift included)."""
    paired = record.latency.paired if record.latency else None
    if paired is not None:
        return SpeedRatio(paired.tpot_ratio, "paired", paired.tpot_ci_low, paired.tpot_ci_high)
    r = ratio(tpot_ms(record), tpot_ms(base)) if base else None
    return SpeedRatio(r, "unpaired") if r is not None else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def task_names(records: list[RunRecord]) -> list[str]:
    """Every lm-eval task that any ok record scored, in first-seen order."""
    names: dict[str, None] = {}
    for r in records:
        if r.status == "ok" and r.quality:
            names.update(dict.fromkeys(r.quality.tasks))
    return list(names)
