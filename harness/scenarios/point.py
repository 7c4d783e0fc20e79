"""What a point does whatever its scenario: its identity (device, machine, key, run id), its run label,
its held-out text, the EnginePoint its engine prepares from, and how a failure becomes a record's status."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.config import RunConfig
from harness.engines import EnginePoint
from harness.engines.base import MissingBuildError
from harness.measure.hardware import fingerprint
from harness.models import DeviceUnavailableError, resolve_device
from harness.results import record as R
from harness.results import schema as S
from harness.results.schema import REFERENCE_ENGINE
from harness.results.store import existing_ok, point_key, run_id_for
from harness.variants import UnsupportedVariantError

log = logging.getLogger(__name__)


def failure(e: BaseException) -> R.Failure:
    """A failure as a record states it: not_built (an engine not built or installed here: its message says how),
    unsupported (a library's limit), oom, or failed; one line."""
    if isinstance(e, MissingBuildError):  # set-up's to do, not the variant's limit
        status = "not_built"
    elif isinstance(e, (UnsupportedVariantError, DeviceUnavailableError)):  # this machine's limit, not a fault
        status = "unsupported"
    elif isinstance(e, torch.OutOfMemoryError):
        status = "oom"
    else:
        status = "failed"
    text = " ".join(str(e).split()) or repr(e)
    return R.Failure(status, f"{type(e).__name__}: {text[:500]}")


def run_label(rc: RunConfig) -> str:
    """The variant's part of the run id: prefixed by the engine's name off the reference engine."""
    return rc.variant.name if rc.engine.name == REFERENCE_ENGINE else f"{rc.engine.name}-{rc.variant.name}"


def heldout_text(rc: RunConfig, use: str = "") -> str:
    """quality.heldout_path's text (``use``: what the scenario cuts from it, for the message)."""
    heldout = Path(rc.quality.heldout_path)
    if not heldout.exists():
        raise FileNotFoundError(f"quality.heldout_path={heldout} does not exist{use}; `meekbench build-tiny` writes it")
    return heldout.read_text(encoding="utf-8")


def engine_point(rc: RunConfig) -> EnginePoint:
    return EnginePoint(model=rc.model, variant=rc.variant, engine=rc.engine, context_length=rc.quality.context_length,
                       decode_length=max(rc.bench.prompt_tokens) + rc.bench.new_tokens, offline=rc.offline)


@dataclass
class Machine:
    device: torch.device
    device_error: ValueError | None  # hardware.device could not be resolved: recorded as the point's failure
    hardware: S.Hardware  # the machine's fingerprint


def machine(rc: RunConfig) -> Machine:
    try:
        device, error = resolve_device(rc.hardware.device), None
    except ValueError as e:
        device, error = torch.device("cpu"), e
    return Machine(device, error, fingerprint(device, rc.hardware.label))


def point_id(rc: RunConfig, resolved: dict, hardware: S.Hardware, label: str,
             level: float | None = None) -> tuple[str, str]:
    """The point's key (its identity: harness/results/store.py) and run id."""
    key = point_key(resolved, hardware.id, level)
    return key, run_id_for(rc.model.name, label, hardware.label, key)


def already_done(rc: RunConfig, run_id: str) -> S.RunRecord | None:
    """The point's ok record, which a re-run skips (unless force=true)."""
    if not rc.force and (done := existing_ok(rc.results_dir, run_id)):
        log.info("%s: ok record exists, skipped (force=true recomputes)", run_id)
        return done
    return None
