"""One point, whatever its scenario: ``run_point(cfg)`` composes the RunConfig and hands it to the
registered scenario (harness/config/serving.py's registry: ``single`` in harness/scenarios/single.py, the
serving kinds in harness/scenarios/serving.py), inside a scheduler's stop guard. Orchestration only.

A failure is data: whatever goes wrong inside a point becomes a record with a status and a one-line
reason, and the sweep goes on. Only a bad invocation (a bad config, an unreachable URL) exits non-zero.
"""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from harness.config import RunConfig, implementation, scenario_specs
from harness.launch.job_stop import stop_reaches_the_point
from harness.results import schema as S


def run_point(cfg: DictConfig) -> S.RunRecord | list[S.ServingRecord]:
    """The point's record (``single``), or one record per level (the serving scenarios)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    rc: RunConfig = OmegaConf.to_object(cfg)
    with stop_reaches_the_point():  # a SLURM job's end is recorded as the point's failure
        return implementation(scenario_specs()[rc.scenario.kind].run)(rc, resolved)
