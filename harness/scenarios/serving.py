"""The serving scenarios (``server``, ``concurrency``, ``offline``): one target (a server at a URL, or the
one the point's engine starts for its model and variant: its schema's ``serve``) loaded at each level of
``scenario.levels``; one record per level. Orchestration only: the load generator is
harness/measure/serving.py, the server process harness/engines/server.py.

A failure is data: a level whose target stops answering is a ``failed`` record with its completed
and failed requests, and the sweep goes on (a started server is started afresh for every level) or stops, as
``scenario.on_failure`` says. With ``scenario.search.enabled`` the levels are found by an SLO
(harness/scenarios/slo_search.py), each measured as a listed one would be. A target given by URL that
does not answer before any traffic is a bad invocation: ``TargetUnreachable``, and the command exits
non-zero with nothing written.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.blocks import EngineInfo
from harness.config import RunConfig, implementation
from harness.engines.server import ServerProcess, free_port
from harness.io import write_atomic
from harness.measure.energy import EnergyMeter
from harness.measure.runs import serving_across
from harness.measure.serving import Prompt, make_prompts, run_level, served_models
from harness.measure.stats import CI_LEVEL
from harness.models import hub_is_offline
from harness.results import record as R
from harness.results import schema as S
from harness.results.store import existing_serving_ok, serving_dir, write_serving_record
from harness.scenarios.point import engine_point, failure, heldout_text, machine, point_id, run_label
from harness.scenarios.serving_fidelity import served_fidelity
from harness.scenarios.slo_search import FixedLevels, SloSearch

log = logging.getLogger(__name__)


class TargetUnreachable(RuntimeError):
    """scenario.target.url does not answer GET /v1/models."""


class TargetAmbiguous(TargetUnreachable):
    """scenario.target.url serves several models and scenario.target.api_model names none of them."""


@dataclass
class _Target:
    """What serves the levels, and what the records say of it."""
    model: S.ModelBlock
    variant: Any
    engine: Any
    tokenizer: Any
    api_model: str
    engine_name: str
    command: Callable[[int], list[str]] | None = None  # the server's command line for a port; None: given by URL
    url: str | None = None


def levels_of(rc: RunConfig) -> list[float]:
    """The levels of load this sweep measures: offline sends scenario.min_requests at once."""
    return [float(rc.scenario.min_requests)] if rc.scenario.kind == "offline" else [float(x) for x in rc.scenario.levels]


def _tokenizer(rc: RunConfig, checkpoint: Path | None):
    from transformers import AutoTokenizer

    m = rc.model
    if checkpoint is not None:
        return AutoTokenizer.from_pretrained(str(checkpoint))
    if m.source == "hub":  # a server given by URL: only the tokenizer is needed here, not the weights
        return AutoTokenizer.from_pretrained(m.hub_id, revision=m.revision, local_files_only=hub_is_offline(rc.offline))
    from harness.models import checkpoint_dir

    return AutoTokenizer.from_pretrained(str(checkpoint_dir(m, rc.offline)))


def api_model_at(rc: RunConfig, listed: list[str]) -> str:
    """The name to ask a server given by URL for: scenario.target.api_model, else the one model it lists
    (GET /v1/models); several listed and none chosen is a bad invocation, which names them."""
    chosen, url = rc.scenario.target.api_model, rc.scenario.target.url
    if chosen:
        if listed and chosen not in listed:
            log.warning("scenario.target.api_model=%s is not among the models %s lists (%s); sent as given",
                        chosen, url, ", ".join(listed))
        return chosen
    if len(listed) == 1:
        log.info("%s serves one model, %s: the requests ask for it", url, listed[0])
        return listed[0]
    if listed:
        raise TargetAmbiguous(f"{url} serves {len(listed)} models ({', '.join(listed)}); valid: "
                              "scenario.target.api_model=<one of them>; nothing was measured")
    fallback = rc.model.hub_id or rc.model.name
    log.warning("%s lists no model under GET /v1/models; the requests ask for %s (scenario.target.api_model "
                "sets another)", url, fallback)
    return fallback


def _target(rc: RunConfig, api_model: str) -> _Target:
    if rc.scenario.target.url:
        return _Target(R.model_block(rc.model), R.variant_block(rc.variant), EngineInfo(name=rc.engine.name),
                       _tokenizer(rc, None), api_model, rc.engine.name, url=rc.scenario.target.url)
    # the server's context: the longest request (or fidelity's held-out window and the one token it asks for), rounded up
    window = rc.quality.context_length + 1 if rc.scenario.fidelity else 0
    n_ctx = 2 ** math.ceil(math.log2(max(_longest(rc) + 8, window)))
    point = dataclasses.replace(engine_point(rc), context_length=n_ctx)
    served = implementation(type(rc.engine).serve)(point, api_model)
    return _Target(R.model_block(rc.model, str(served.checkpoint.resolve()), served.card),
                   R.variant_block(served.variant), served.info, _tokenizer(rc, served.checkpoint), api_model,
                   rc.engine.name, command=served.command)


def _longest(rc: RunConfig) -> int:
    sc = rc.scenario
    spread = 1 + (sc.length_range if sc.length_distribution == "uniform" else 0)
    return math.ceil(sc.input_tokens * spread) + math.ceil(sc.output_tokens * spread) + 2


def _prompts(rc: RunConfig, tokenizer: Any, ids: list[int], level: float) -> list[Prompt]:
    """The level's own prompts, seeded by scenario.seed and the level: a server's prefix cache cannot carry one
    level's prompts into the next (the same prompt again would skip its prefill)."""
    sc = rc.scenario
    if sc.kind == "server":
        count = max(sc.min_requests, math.ceil(level * sc.min_duration_s))
    else:  # a closed loop sends as many as its clients finish in min_duration_s: beyond the pool, in turn again
        count = 4 * sc.min_requests
    return make_prompts(ids, tokenizer.decode, count + sc.warmup_requests, sc.input_tokens, sc.output_tokens,
                        sc.length_distribution, sc.length_range, sc.seed + round(level * 1000))


def run(rc: RunConfig, resolved: dict) -> list[S.ServingRecord]:
    """Every level the planner asks for (scenario.levels, or an SLO search's), each measured unless an ok
    record of it exists (force=true measures it again)."""
    sc = rc.scenario
    if sc.search.enabled:
        planner = SloSearch(sc.search.slo, sc.search.limits(), float(sc.levels[0]), sc.search.max_level,
                            sc.search.max_steps, sc.search.resolution, whole=sc.kind == "concurrency",
                            resamples=sc.bootstrap_resamples, seed=sc.seed)
    else:
        planner = FixedLevels(levels_of(rc), stop_on_failure=sc.on_failure == "stop")
    with _Levels(rc, resolved) as levels:
        level = planner.first()
        while level is not None:
            level = planner.next(levels.record(level))
    if isinstance(planner, SloSearch):
        _report_search(rc, planner, levels.records)
    return levels.records


def _report_search(rc: RunConfig, search: SloSearch, records: list[S.ServingRecord]) -> None:
    """The search's steps and operating point: on the console and in serving/search--<first level's run>.json."""
    for step in search.steps:
        log.info("search %s: level %g %s (%s)", search.slo_name, step.level, step.verdict, step.why)
    op = search.operating_point()
    log.info("search %s ended: %s; operating point: %s", search.slo_name, search.stop_reason,
             f"level {op.level:g}, {op.output_token_throughput:.1f} output tok/s ({op.run_id})" if op else
             "none (no level met the SLO)")
    out = serving_dir(rc.results_dir, records[0].run_id).parent / f"search--{records[0].run_id}.json"
    write_atomic(out, json.dumps(search.summary(), indent=1))
    log.info("search written to %s", out)


class _Levels:
    """Measures levels one at a time against one target: prepared only when a level needs measuring; a server
    it starts is started afresh for every level and run (a warm server's prompt cache would otherwise serve
    the next level's prefill), and stopped on every exit path."""

    def __init__(self, rc: RunConfig, resolved: dict):
        m = machine(rc)
        self.rc, self.resolved, self.device, self.hw = rc, resolved, m.device, m.hardware
        self.records: list[S.ServingRecord] = []
        self.server: ServerProcess | None = None
        self.target: _Target | None = None
        self.heldout_ids: list[int] = []
        self.unprepared: R.Failure | None = None
        self.prepared = False
        self.fidelity_measured = False

    def __enter__(self) -> "_Levels":
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.stop()

    def record(self, level: float) -> S.ServingRecord:
        """The level's ok record if one exists (force=false), else the level measured now and recorded."""
        rc = self.rc
        key, run_id = point_id(rc, self.resolved, self.hw, f"{run_label(rc)}--{rc.scenario.kind}-{level:g}", level)
        done = None if rc.force else existing_serving_ok(rc.results_dir, run_id)
        if done:
            log.info("%s: ok record exists, skipped (force=true recomputes)", run_id)
            self.records.append(done)
            # the same target's fidelity is in an earlier level's record (an SLO search reusing a curve's levels)
            self.fidelity_measured = self.fidelity_measured or done.served_fidelity is not None
            return done
        record = self._measure(level, key, run_id)
        self.records.append(record)
        return record

    def _prepare(self) -> None:
        rc, sc = self.rc, self.rc.scenario
        self.prepared = True
        api_model = sc.target.api_model or rc.model.hub_id or rc.model.name  # the name a started server serves
        if sc.target.url:
            listed, why = served_models(sc.target.url)
            if why:
                raise TargetUnreachable(f"scenario.target.url={sc.target.url} does not answer GET /v1/models "
                                        f"({why}); nothing was measured")
            api_model = api_model_at(rc, listed)  # several models, none chosen: a bad invocation before any load
        try:
            self.target = _target(rc, api_model)
            self.heldout_ids = self.target.tokenizer(heldout_text(rc, " (the prompts are cut from it)"),
                                                     add_special_tokens=False)["input_ids"]
        except Exception as e:  # the target could not be prepared: every level says why
            self.unprepared = failure(e)

    def _serve(self, run_id: str) -> R.Failure | None:
        """A freshly started server for a level or a run (none of an earlier level's caches or queues carried
        over); a failure if it did not come up. A server given by URL is used as it is."""
        target, sc = self.target, self.rc.scenario
        if target.command is None:
            return None
        if self.server is not None:
            self.server.stop()
        port = free_port()
        self.server = ServerProcess(target.command(port), port, serving_dir(self.rc.results_dir, run_id) / "server.log",
                                    sc.target.startup_timeout_s)
        try:
            self.server.start()
        except Exception as e:
            self.server = None
            return failure(e)
        return None

    def _more_runs(self, first: Any, level: float, run_id: str, prompts: list[Prompt]) -> S.ServingAcrossRuns | None:
        """Runs 2..scenario.runs of a level, a started server started afresh for each (a URL's as it is)."""
        sc, target = self.rc.scenario, self.target
        levels = [first]
        for i in range(2, sc.runs + 1):
            if (why := self._serve(run_id)) is not None:
                log.warning("%s: run %d of %d: the server did not start (%s); no across-run figures",
                            run_id, i, sc.runs, why.error)
                return None
            url = self.server.url if self.server else target.url
            log.info("%s: run %d of %d against %s", run_id, i, sc.runs, url)
            levels.append(run_level(url, target.api_model, prompts, sc.kind, level, sc))
        across = serving_across(levels, target.command is not None, sc.bootstrap_resamples, CI_LEVEL, sc.seed)
        if across is None:
            log.warning("%s: a run completed no request: no across-run figures", run_id)
        return across

    def _measure(self, level: float, key: str, run_id: str) -> S.ServingRecord:
        rc, sc = self.rc, self.rc.scenario
        if not self.prepared:
            self._prepare()
        started = time.perf_counter()
        target, server = self.target, None
        result, level_failure, url, fidelity = None, self.unprepared, target.url if target else None, None
        if level_failure is None:
            level_failure = self._serve(run_id)
            server = self.server
        if level_failure is None:
            url = server.url if server else target.url
            meter = EnergyMeter(self.device) if server else None
            log.info("%s: %s level %g against %s", run_id, sc.kind, level, url)
            prompts = _prompts(rc, target.tokenizer, self.heldout_ids, level)
            result = run_level(url, target.api_model, prompts, sc.kind, level, sc, meter=meter)
            if sc.runs > 1:
                result.across_runs = self._more_runs(result, level, run_id, prompts)
            if sc.fidelity and not self.fidelity_measured:  # once per sweep, after the load (module docstring)
                self.fidelity_measured = True
                serving_now = self.server.url if self.server else target.url  # the last run's server
                fidelity = served_fidelity(rc, self.device, self.hw.id, serving_now, target.api_model,
                                           target.tokenizer, run_id)
        record = R.build_serving_record(
            run_id=run_id, point_key=key, config=self.resolved, duration_s=time.perf_counter() - started,
            model=target.model if target else R.model_block(rc.model),
            variant=target.variant if target else R.variant_block(rc.variant),
            hardware=self.hw, level=result, failure=level_failure, engine=target.engine if target else None,
            target=_target_block(target, url, server, sc.target.url is None),
            energy_reason="the target is given by URL: its machine's counters are not readable from the "
                          "client" if sc.target.url else None, served_fidelity=fidelity)
        write_serving_record(rc.results_dir, record)
        log.info("%s: %s", run_id, _line(record))
        if record.status != "ok" and sc.on_failure == "stop" and not sc.search.enabled:
            log.warning("scenario.on_failure=stop: the sweep ends at level %g", level)
        return record


def _target_block(target: _Target | None, url: str | None, server: ServerProcess | None,
                  launched: bool) -> S.TargetBlock | None:
    if target is None:
        return None
    return R.target_block(url=url or "", launched=launched, api_model=target.api_model, engine=target.engine_name,
                          launch_command=server.command if server else None,
                          server_log=str(server.log_path) if server else None,
                          startup_s=server.startup_s if server else None)


def _line(record: S.ServingRecord) -> str:
    s = record.serving
    if s is None:
        return f"{record.status}: {record.error}"
    p99 = lambda stats: f"{stats.p99:.1f}" if stats else "-"  # noqa: E731
    tput = f"{s.output_token_throughput:.1f}" if s.output_token_throughput else "-"
    return (f"{record.status}: {s.completed}/{len(s.requests)} requests, {tput} output tok/s, "
            f"p99 TTFT {p99(s.ttft_ms)} ms, p99 TPOT {p99(s.tpot_ms)} ms" + (f"; {record.error}" if record.error else ""))
