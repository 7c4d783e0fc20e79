"""Fidelity as a comparison of two records, whatever order their points ran in: each point stored
its own held-out next-token distributions beside its record, and the variant's are compared with
its baseline's here (harness/distributions.compare, the function a point uses when its
baseline's reference is already there, so both give the same figures)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from harness.blocks import Fidelity
from harness.distributions import TokenReference, compare
from harness.results import schema as S
from harness.results.store import read_reference

_PLAN_KEYS = ("top_k", "full_vocab_max", "logprob_shift_nats", "bootstrap_resamples", "ci_level", "seed")


def _distributions(record: S.RunRecord) -> TokenReference | None:
    path = record.quality.distributions_path if record.quality else None
    found = read_reference(Path(path)) if path else None
    return TokenReference.from_arrays(found[0]) if found else None


def fidelity_between(record: S.RunRecord, baseline: S.RunRecord | None) -> tuple[Fidelity | None, str | None]:
    """The variant's fidelity against its baseline from both points' stored distributions, or (for
    records without them) the one its point measured; else None and why it is missing."""
    if baseline is not None:
        mine, theirs = _distributions(record), _distributions(baseline)
        tags = (record.quality.distributions_settings if record.quality else None,
                baseline.quality.distributions_settings if baseline.quality else None)
        if mine is not None and theirs is not None:
            if tags[0] != tags[1]:
                return record.fidelity, (None if record.fidelity else
                                         f"{baseline.run_id}'s held-out pass had other settings (text, windows or k): "
                                         "rerun one of the two points with the other's quality and compare settings")
            plan = SimpleNamespace(**{k: (record.config.get("compare") or {}).get(k) for k in _PLAN_KEYS})
            return compare(theirs, mine, plan), None
    if record.fidelity is not None:
        return record.fidelity, None
    if baseline is None:
        return None, record.fidelity_missing or "no baseline record"
    return None, (f"no stored held-out distributions for {'this point' if _distributions(record) is None else baseline.run_id} "
                  "(written by meekbench before they were kept): rerun it with force=true")
