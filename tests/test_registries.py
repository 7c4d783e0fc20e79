"""An engine and a scenario are each one registration: a toy engine and a toy scenario, defined in this file
alone, run a real tiny-model point through `run_point` with no edit anywhere else in the project."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.config import EngineConfig, engine_names, register_engine, register_scenario, scenario_specs
from harness.results.store import read_record, run_dir
from harness.run import run_point


@register_engine
@dataclass
class ToyEngine(EngineConfig):
    """The variant's transformers model with its logits computed in float64 (a distinct engine: its own
    name, its own config key, its own prepare)."""
    name: str = "toy"
    upcast: bool = True  # a key of its own: in the point's identity

    variant_kinds: ClassVar[tuple[str, ...]] = ("baseline",)
    prepare: ClassVar[str] = f"{__name__}:toy_prepare"


def toy_prepare(point, device: torch.device):
    from harness.engines import hf

    prepared = hf.prepare(point, device)
    model_logits = prepared.target.logits

    def logits(ids: torch.Tensor) -> torch.Tensor:
        out = model_logits(ids)
        return out.double().float() if point.engine.upcast else out

    target = dataclasses.replace(prepared.target, logits=logits,
                                 info=dataclasses.replace(prepared.target.info, name="toy"))
    return dataclasses.replace(prepared, target=target)


SCENARIO_CALLS: list[str] = []


def toy_scenario(rc, resolved):
    """A scenario that runs the single point and notes that it was the one called."""
    from harness.scenarios import single

    SCENARIO_CALLS.append(rc.scenario.kind)
    return single.run(rc, resolved)


register_scenario("toy-single", f"{__name__}:toy_scenario", serving=False)


def test_a_toy_engine_registered_here_runs_a_real_point(run_cfg):
    assert "toy" in engine_names()
    base = run_point(run_cfg("model=tiny-xs", "variant=fp32", "bench.paired_baseline=false"))
    toy = run_point(run_cfg("model=tiny-xs", "variant=fp32", "engine=toy_schema", "bench.paired_baseline=false"))
    assert toy.status == "ok", toy.error
    assert toy.engine.name == "toy" and "toy-fp32" in toy.run_id and toy.point_key != base.point_key
    again = read_record(run_dir(toy.config["results_dir"], toy.run_id) / "record.json")
    assert again.config["engine"] == {"name": "toy", "isolate": False, "upcast": True}
    # the same model on another engine: the same held-out loss, and fidelity read against the fp32 reference
    assert abs(toy.quality.heldout_loss_nats - base.quality.heldout_loss_nats) < 1e-4
    assert toy.fidelity is not None and toy.fidelity.kl_mean_nats < 1e-6 and toy.fidelity.same_top_rate == 1.0


def test_a_toy_scenario_registered_here_runs_a_real_point(run_cfg):
    assert "toy-single" in scenario_specs()
    rec = run_point(run_cfg("model=tiny-xs", "variant=fp32", "scenario.kind=toy-single"))
    assert SCENARIO_CALLS == ["toy-single"]
    assert rec.status == "ok" and rec.quality.heldout_loss_nats > 0, rec.error
