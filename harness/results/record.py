"""The one place a point's results become a RunRecord.

``run.py`` hands over what it has (config, hardware, the variant's description, the
measurements or the failure) and this module decides every field: the model's counts (from
the loaded model where the variant says they are readable, else its card, else the config),
the headline latency, and the status (a point whose every latency scenario ran out of memory
is ``oom``). Inputs are measurement dataclasses, read by attribute name: nothing here imports
``harness.measure`` or torch.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Mapping, Optional

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


def variant_block(variant: Any) -> S.VariantBlock:
    """From the variant's own description once prepared, or from its config when it never got there."""
    fields = {name: getattr(variant, name) for name in S.VariantBlock.model_fields if hasattr(variant, name)}
    return S.VariantBlock.model_validate(fields | {"options": _plain(getattr(variant, "options", None))})


def quality_block(heldout: Any, tasks: Any = None, samples_path: Optional[Path] = None) -> S.QualityBlock:
    block = S.QualityBlock.model_validate(heldout)
    if tasks is not None:
        block = block.model_copy(update={
            "tasks": {name: S.TaskScore.model_validate(score) for name, score in tasks.tasks.items()},
            "lm_eval_version": tasks.lm_eval_version,
            "samples_path": str(samples_path) if samples_path else None})
    return block


HEADLINE = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "output_tokens_per_s", "generate_over_bare", "round_spread",
            "paired")


def latency_block(latency: Any) -> S.LatencyBlock:
    """The scenarios as measured, with the first scenario that ran as the headline."""
    block = S.LatencyBlock.model_validate(latency)
    head = next((sc for sc in block.scenarios if sc.status == "ok"), None)
    if head is None:
        return block
    return block.model_copy(update={key: getattr(head, key) for key in HEADLINE})


def _oom(latency: S.LatencyBlock) -> Optional[Failure]:
    scenarios = latency.scenarios
    if scenarios and all(sc.status == "oom" for sc in scenarios):
        return Failure("oom", "; ".join(sc.error for sc in scenarios if sc.error))
    return None


def build_record(*, run_id: str, point_key: str, config: Mapping[str, Any], duration_s: float, model: S.ModelBlock,
                 variant: S.VariantBlock, hardware: Any, probes: Any = None, measured: Any = None,
                 samples_path: Optional[Path] = None, failure: Optional[Failure] = None,
                 fidelity_missing: Optional[str] = None, engine: Any = None) -> S.RunRecord:
    """One validated record. ``measured`` is a point's measurements (quality, tasks, latency, energy,
    memory, roofline, fidelity attributes) or None when the point failed before measuring;
    ``fidelity_missing`` says why a point that should have a fidelity block has none."""
    blocks: dict[str, Any] = {}
    if measured is not None:
        latency = latency_block(measured.latency)
        blocks = {"quality": quality_block(measured.quality, measured.tasks, samples_path), "latency": latency,
                  "energy": S.EnergyBlock.model_validate(measured.energy),
                  "memory": S.MemoryBlock.model_validate(measured.memory),
                  "roofline": S.RooflineBlock.model_validate(measured.roofline) if measured.roofline else None,
                  "fidelity": S.FidelityBlock.model_validate(measured.fidelity) if measured.fidelity else None,
                  "fidelity_missing": fidelity_missing}
        failure = failure or _oom(latency)
    hw = S.HardwareBlock.model_validate(hardware).model_copy(
        update={"probes": S.ProbesBlock.model_validate(probes) if probes is not None else None})
    return S.RunRecord(
        run_id=run_id, point_key=point_key, status=failure.status if failure else "ok",
        error=failure.error if failure else None,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), duration_s=round(duration_s, 3),
        config=dict(config), model=model, variant=variant, hardware=hw,
        engine=S.EngineBlock.model_validate(engine) if engine is not None else None, software=software(),
        launch=S.LaunchBlock.model_validate(launch()), **blocks)


def build_serving_record(*, run_id: str, point_key: str, config: Mapping[str, Any], duration_s: float,
                         model: S.ModelBlock, variant: S.VariantBlock, hardware: Any, target: Any = None,
                         level: Any = None, failure: Optional[Failure] = None, engine: Any = None,
                         energy_reason: Optional[str] = None) -> S.ServingRecord:
    """One validated serving record. ``level`` is one level's measurements (harness.measure.serving's
    LevelResult) or None when the point failed before any load. A level whose target stopped answering
    (connection errors) or that completed no request is ``failed``, with its requests kept."""
    serving = energy = None
    if level is not None:
        serving = S.ServingBlock.model_validate(level).model_copy(
            update={"requests": [S.ServedRequestBlock.model_validate(r) for r in level.requests]})
        reading = level.energy
        tokens = sum(r.output_tokens for r in serving.requests if r.error is None)
        energy = S.EnergyBlock(joules=getattr(reading, "joules", None), j_per_token=level.energy_j_per_output_token,
                               source=getattr(reading, "source", None),
                               reason=getattr(reading, "reason", None) or energy_reason)
        if failure is None and (serving.target_failed or not serving.completed):
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(serving.errors.items()))
            why = "the target stopped answering" if serving.target_failed else "no request completed"
            failure = Failure("failed", f"{why}: {serving.completed} of {len(serving.requests)} requests completed "
                                        f"({kinds}; {tokens} output tokens)")
    elif energy_reason:
        energy = S.EnergyBlock(reason=energy_reason)
    hw = S.HardwareBlock.model_validate(hardware)
    return S.ServingRecord(
        run_id=run_id, point_key=point_key, status=failure.status if failure else "ok",
        error=failure.error if failure else None,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), duration_s=round(duration_s, 3),
        config=dict(config), model=model, variant=variant, hardware=hw,
        engine=S.EngineBlock.model_validate(engine) if engine is not None else None,
        target=S.TargetBlock.model_validate(target) if target is not None else None, serving=serving,
        energy=energy, software=software(), launch=S.LaunchBlock.model_validate(launch()))
