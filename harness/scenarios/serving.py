"""The serving scenarios (``server``, ``concurrency``, ``offline``): one target (a server at a URL, or the
one the point's engine starts for its model and variant: its schema's ``serve``) loaded at each level of
``scenario.levels``; one record per level. Orchestration only: the load generator is
harness/measure/serving.py, the server process harness/engines/server.py.

A failure is data: a level whose target stops answering is a ``failed`` record with its completed
and failed requests, and the sweep goes on (a started server is started again) or stops, as
``scenario.on_failure`` says. A target given by URL that does not answer before any traffic is a
bad invocation: ``TargetUnreachable``, and the command exits non-zero with nothing written.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.blocks import EngineInfo
from harness.config import RunConfig, implementation
from harness.engines.server import ServerProcess, free_port
from harness.measure.energy import EnergyMeter
from harness.measure.serving import Prompt, make_prompts, run_level, served_models
from harness.models import hub_is_offline
from harness.results import record as R
from harness.results import schema as S
from harness.results.store import existing_serving_ok, serving_dir, write_serving_record
from harness.scenarios.point import engine_point, failure, heldout_text, machine, point_id, run_label

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
    n_ctx = 2 ** math.ceil(math.log2(_longest(rc) + 8))  # the server's context: the longest request, rounded up
    point = dataclasses.replace(engine_point(rc), context_length=n_ctx)
    served = implementation(type(rc.engine).serve)(point, api_model)
    return _Target(R.model_block(rc.model, str(served.checkpoint.resolve()), served.card),
                   R.variant_block(served.variant), served.info, _tokenizer(rc, served.checkpoint), api_model,
                   rc.engine.name, command=served.command)


def _longest(rc: RunConfig) -> int:
    sc = rc.scenario
    spread = 1 + (sc.length_range if sc.length_distribution == "uniform" else 0)
    return math.ceil(sc.input_tokens * spread) + math.ceil(sc.output_tokens * spread) + 2


def _prompts(rc: RunConfig, tokenizer: Any) -> list[Prompt]:
    sc = rc.scenario
    ids = tokenizer(heldout_text(rc, " (the prompts are cut from it)"), add_special_tokens=False)["input_ids"]
    most = max(levels_of(rc)) if sc.kind == "server" else 0  # a closed loop that runs longer reuses them in turn
    count = max(sc.min_requests, math.ceil(most * sc.min_duration_s)) + sc.warmup_requests
    return make_prompts(ids, tokenizer.decode, count, sc.input_tokens, sc.output_tokens, sc.length_distribution,
                        sc.length_range, sc.seed)


def run(rc: RunConfig, resolved: dict) -> list[S.ServingRecord]:
    """Every level of the sweep not yet recorded ok (all of them with force=true)."""
    sc = rc.scenario
    m = machine(rc)
    device, hw = m.device, m.hardware
    points = []
    for level in levels_of(rc):
        key, run_id = point_id(rc, resolved, hw, f"{run_label(rc)}--{sc.kind}-{level:g}", level)
        done = None if rc.force else existing_serving_ok(rc.results_dir, run_id)
        if done:
            log.info("%s: ok record exists, skipped (force=true recomputes)", run_id)
        points.append((level, key, run_id, done))
    todo = [p for p in points if p[3] is None]
    measured = _measure(rc, resolved, device, hw, todo) if todo else {}
    return [r for _, _, run_id, done in points if (r := measured.get(run_id) or done)]


def _measure(rc: RunConfig, resolved: dict, device: Any, hw: Any,
             todo: list[tuple[float, str, str, Any]]) -> dict[str, S.ServingRecord]:
    """Load the target at each level of ``todo`` and write its record (run id -> record)."""
    sc = rc.scenario
    api_model = sc.target.api_model or rc.model.hub_id or rc.model.name  # the name a started server serves
    if sc.target.url:
        listed, why = served_models(sc.target.url)
        if why:
            raise TargetUnreachable(f"scenario.target.url={sc.target.url} does not answer GET /v1/models ({why}); "
                                    "nothing was measured")
        api_model = api_model_at(rc, listed)  # several models, none chosen: a bad invocation before any load

    records, server, target, unprepared = {}, None, None, None
    try:
        try:
            target = _target(rc, api_model)
            prompts = _prompts(rc, target.tokenizer)
        except Exception as e:  # the target could not be prepared: every level says why
            unprepared = failure(e)
        for level, key, run_id, _ in todo:
            started = time.perf_counter()
            result, level_failure, url = None, unprepared, target.url if target else None
            if level_failure is None and target.command is not None and (server is None or not server.alive()):
                if server is not None:
                    server.stop()
                port = free_port()
                server = ServerProcess(target.command(port), port, serving_dir(rc.results_dir, run_id) / "server.log",
                                       sc.target.startup_timeout_s)
                try:
                    server.start()
                except Exception as e:
                    level_failure, server = failure(e), None
            if level_failure is None:
                url = server.url if server else target.url
                meter = EnergyMeter(device) if server else None
                log.info("%s: %s level %g against %s", run_id, sc.kind, level, url)
                result = run_level(url, target.api_model, prompts, sc.kind, level, sc, meter=meter)
            record = R.build_serving_record(
                run_id=run_id, point_key=key, config=resolved, duration_s=time.perf_counter() - started,
                model=target.model if target else R.model_block(rc.model),
                variant=target.variant if target else R.variant_block(rc.variant),
                hardware=hw, level=result, failure=level_failure, engine=target.engine if target else None,
                target=_target_block(target, url, server, sc.target.url is None),
                energy_reason="the target is given by URL: its machine's counters are not readable from the "
                              "client" if sc.target.url else None)
            write_serving_record(rc.results_dir, record)
            records[run_id] = record
            log.info("%s: %s", run_id, _line(record))
            if record.status != "ok" and sc.on_failure == "stop":
                log.warning("scenario.on_failure=stop: the sweep ends at level %g", level)
                break
            if record.status != "ok" and server is not None:
                server.stop()  # started again for the next level
                server = None
    finally:
        if server is not None:
            server.stop()
    return records


def _target_block(target: _Target | None, url: str | None, server: ServerProcess | None,
                  launched: bool) -> S.TargetBlock | None:
    if target is None:
        return None
    return R.target_block(url=url or "", launched=launched, api_model=target.api_model, engine=target.engine_name,
                          launch_command=server.command if server else None,
                          server_log=str(server.log_path) if server else None)


def _line(record: S.ServingRecord) -> str:
    s = record.serving
    if s is None:
        return f"{record.status}: {record.error}"
    p99 = lambda stats: f"{stats.p99:.1f}" if stats else "-"  # noqa: E731
    tput = f"{s.output_token_throughput:.1f}" if s.output_token_throughput else "-"
    return (f"{record.status}: {s.completed}/{len(s.requests)} requests, {tput} output tok/s, "
            f"p99 TTFT {p99(s.ttft_ms)} ms, p99 TPOT {p99(s.tpot_ms)} ms" + (f"; {record.error}" if record.error else ""))
