"""The one place a point's results become a RunRecord.

``run.py`` hands over what it has (config, hardware, the variant's description, the
measurements or the failure) and this module decides every field: the model's counts (from
the loaded model where the variant says they are readable, else its card, else the config),
the headline latency, and the status (a point whose every latency scenario ran out of memory
is ``oom``). The measurements arrive as the blocks a record stores (harness/blocks.py) and are
stored as they are: nothing here imports ``harness.measure`` or torch.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Mapping, Optional

from harness.blocks import HEADLINE
from harness.results import schema as S
from harness.results.provenance import launch, software


@dataclasses.dataclass
class Failure:
    status: S.Status  # failed | unsupported | oom
    error: str  # one line


def _plain(value: Any) -> Any:
    """Options as recorded: dataclasses (structured config nodes) become dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(value or {})


def model_block(model_cfg: Any, source: Optional[str] = None, card: Any = None, counts: Any = None,
                distilled_from: Optional[str] = None) -> S.ModelBlock:
    """Counts, best first: the loaded model's own (``counts``), its card, the config's declared ones."""
    def pick(name: str, counted: Any = None) -> Any:
        for value in (counted, getattr(card, name, None), getattr(model_cfg, name, None)):
            if value is not None:
                return value
        return None

    params = pick("params", counts.total if counts else None)
    non_emb = pick("non_embedding_params", counts.non_embedding if counts else None)
    tokens = pick("train_tokens")
    flops = getattr(card, "train_flops", None) or (6 * params * tokens if params and tokens else None)
    return S.ModelBlock(name=model_cfg.name, source=source or model_cfg.path or model_cfg.hub_id or "",
                        family=model_cfg.family, params=params, non_embedding_params=non_emb, train_tokens=tokens,
                        train_flops=flops, distilled_from=distilled_from or model_cfg.distilled_from,
                        weights=getattr(card, "weights", None))


def variant_block(variant: Any) -> S.VariantInfo:
    """From the variant's own description once prepared, or from its config when it never got there."""
    fields = {f.name: getattr(variant, f.name) for f in dataclasses.fields(S.VariantInfo) if hasattr(variant, f.name)}
    return S.VariantInfo(**fields | {"options": _plain(getattr(variant, "options", None))})


def quality_block(heldout: Any, tasks: Any = None, samples_path: Optional[Path] = None,
                  distributions: tuple[Optional[Path], Optional[str]] = (None, None)) -> S.Quality:
    path, tag = distributions
    heldout = dataclasses.replace(heldout, distributions_path=str(path) if path else None, distributions_settings=tag)
    if tasks is None:
        return heldout
    return dataclasses.replace(heldout, tasks=dict(tasks.tasks), lm_eval_version=tasks.lm_eval_version,
                               samples_path=str(samples_path) if samples_path else None)


def latency_block(latency: Any) -> S.Latency:
    """The scenarios as measured, with the first scenario that ran as the headline."""
    head = next((sc for sc in latency.scenarios if sc.status == "ok"), None)
    if head is None:
        return latency
    return dataclasses.replace(latency, **{key: getattr(head, key) for key in HEADLINE})


def _oom(latency: S.Latency) -> Optional[Failure]:
    scenarios = latency.scenarios
    if scenarios and all(sc.status == "oom" for sc in scenarios):
        return Failure("oom", "; ".join(sc.error for sc in scenarios if sc.error))
    return None


def build_record(*, run_id: str, point_key: str, config: Mapping[str, Any], duration_s: float, model: S.ModelBlock,
                 variant: S.VariantInfo, hardware: S.Hardware, probes: Optional[S.Probes] = None, measured: Any = None,
                 samples_path: Optional[Path] = None, failure: Optional[Failure] = None,
                 distributions: tuple[Optional[Path], Optional[str]] = (None, None),
                 fidelity_missing: Optional[str] = None, engine: Optional[S.EngineInfo] = None) -> S.RunRecord:
    """One validated record. ``measured`` is a point's measurements (quality, tasks, latency, energy,
    memory, roofline, fidelity attributes) or None when the point failed before measuring;
    ``fidelity_missing`` says why a point that should have a fidelity block has none."""
    blocks: dict[str, Any] = {}
    if measured is not None:  # every measured block the record has a field for, stored as measured
        blocks = {f.name: getattr(measured, f.name) for f in dataclasses.fields(measured)
                  if f.name in S.RunRecord.model_fields}
        blocks |= {"quality": quality_block(measured.quality, measured.tasks, samples_path, distributions),
                   "latency": latency_block(measured.latency), "fidelity_missing": fidelity_missing}
        failure = failure or _oom(blocks["latency"])
    hw = dataclasses.replace(hardware, probes=probes)
    return S.RunRecord(
        run_id=run_id, point_key=point_key, status=failure.status if failure else "ok",
        error=failure.error if failure else None,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), duration_s=round(duration_s, 3),
        config=dict(config), model=model, variant=variant, hardware=hw,
        engine=engine, software=software(),
        launch=S.LaunchBlock.model_validate(launch()), **blocks)


def target_block(*, url: str, launched: bool, api_model: str, engine: Optional[str] = None,
                 launch_command: Optional[list[str]] = None, server_log: Optional[str] = None,
                 startup_s: Optional[float] = None) -> S.TargetBlock:
    """The server a serving point loaded: given by URL, or started by meekbench (its command, log, start-up)."""
    return S.TargetBlock(url=url, launched=launched, api_model=api_model, engine=engine,
                         launch_command=launch_command, server_log=server_log, startup_s=startup_s)


def served_fidelity_block(method: str, **measured: Any) -> S.ServedFidelity:
    """A serving sweep's fidelity (harness/scenarios/serving_fidelity.py): what it measured, or why it has none."""
    return S.ServedFidelity(method=method, **measured)


def build_serving_record(*, run_id: str, point_key: str, config: Mapping[str, Any], duration_s: float,
                         model: S.ModelBlock, variant: S.VariantInfo, hardware: S.Hardware, target: Optional[S.TargetBlock] = None,
                         level: Any = None, failure: Optional[Failure] = None, engine: Optional[S.EngineInfo] = None,
                         energy_reason: Optional[str] = None,
                         served_fidelity: Optional[S.ServedFidelity] = None) -> S.ServingRecord:
    """One validated serving record. ``level`` is one level's measurements (harness.measure.serving's
    LevelResult) or None when the point failed before any load. A level whose target refused its first
    requests, stopped answering (its health check, after connection errors) or completed no request is
    ``failed``, with its requests kept."""
    serving = energy = None
    if level is not None:
        serving = S.ServingLevel(**{f.name: getattr(level, f.name) for f in dataclasses.fields(S.ServingLevel)})
        reading = level.energy
        tokens = sum(r.output_tokens for r in serving.requests if r.error is None)
        energy = S.Energy(joules=getattr(reading, "joules", None), j_per_token=level.energy_j_per_output_token,
                               source=getattr(reading, "source", None),
                               reason=getattr(reading, "reason", None) or energy_reason)
        if failure is None and serving.refused:
            failure = Failure("failed", f"the server refused the first requests, so the level ended at once: "
                                        f"{serving.refused}")
        elif failure is None and (serving.target_failed or not serving.completed):
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(serving.errors.items()))
            why = ("the target stopped answering its health check" if serving.target_failed
                   else "no request completed")
            first = next((r.error for r in serving.requests if r.error), None)  # what the server said, if it did
            failure = Failure("failed", f"{why}: {serving.completed} of {len(serving.requests)} requests completed "
                                        f"({kinds}; {tokens} output tokens)" + (f"; the first error: {first[:300]}"
                                                                                if first else ""))
    elif energy_reason:
        energy = S.Energy(reason=energy_reason)
    return S.ServingRecord(
        run_id=run_id, point_key=point_key, status=failure.status if failure else "ok",
        error=failure.error if failure else None,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), duration_s=round(duration_s, 3),
        config=dict(config), model=model, variant=variant, hardware=hardware, engine=engine,
        target=target, serving=serving, served_fidelity=served_fidelity,
        energy=energy, software=software(), launch=S.LaunchBlock.model_validate(launch()))
