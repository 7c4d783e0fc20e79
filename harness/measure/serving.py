"""Load on an OpenAI-compatible streaming endpoint (``POST /v1/completions`` with server-sent events),
measured per token at the client, as vLLM's ``bench serve`` and MLPerf Inference define the figures.

A *level* is one point of a sweep: ``server`` sends requests at gamma-distributed arrival times
(shape ``burstiness``; 1 is a Poisson process) at ``level`` requests/s, open loop, whether or not
earlier ones have finished; ``concurrency`` keeps ``level`` clients each with one request in
flight (closed loop); ``offline`` sends every request at once. For each request the client stamps
the clock when it is sent and when each streamed chunk with text arrives:

    TTFT  = first chunk - sent
    ITL   = every interval between consecutive chunks
    e2e   = last chunk - sent
    TPOT  = (e2e - TTFT) / (output tokens - 1)      output tokens as the server counts them (usage)
    request throughput      = completed requests / duration (first send to last completion)
    output token throughput = output tokens of completed requests / duration

Intervals resample whole requests. A request that fails (refused connection, dropped stream,
HTTP error, timeout, fewer tokens than asked) is kept with its reason; it counts against
goodput, never silently. One whose kept-alive connection fails before any answer is sent again
once on a fresh connection (counted). A server that refuses the level's first requests (HTTP 4xx,
e.g. a model name it does not serve) ends the level at once with its message; connection errors
declare the target gone only if it then fails its health check. The client's own cost is measured
too: how late each request left against its schedule (``send_lag_ms``) and the time spent handling
chunks per token.

Takes plain values (URL, prompts, a plan) and returns dataclasses; knows no config or record.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from harness.blocks import ServedRequest, ServingLevel
from harness.measure.energy import EnergyReading
from harness.measure.server_probe import list_models, served_models, unreachable  # noqa: F401 (re-exported)
from harness.measure.stats import CI_LEVEL, summarize, summarize_groups

BY_REQUEST = "requests"
LOAD_GENERATOR = "meekbench asyncio + aiohttp streaming client"


class LoadPlan(Protocol):
    """How one level loads the target (harness.config.ScenarioConfig is one, with ``levels``)."""
    kind: str
    burstiness: float
    min_requests: int
    min_duration_s: float
    max_duration_s: float
    warmup_requests: int
    request_timeout_s: float
    bootstrap_resamples: int
    seed: int


class Meter(Protocol):
    def start(self) -> None: ...
    def stop(self) -> EnergyReading: ...


@dataclass(frozen=True)
class Prompt:
    text: str
    input_tokens: int  # as cut from the token stream (the server may count one or two differently)
    output_tokens: int  # asked for


def make_prompts(token_ids: Sequence[int], decode: Any, count: int, input_tokens: int, output_tokens: int,
                 distribution: str = "fixed", length_range: float = 0.0, seed: int = 0) -> list[Prompt]:
    """``count`` prompts cut at seeded random offsets from a token stream (the held-out text), with
    input and output lengths fixed or uniform in [(1 - r) L, (1 + r) L] (vLLM's random range ratio)."""
    rng = np.random.default_rng(seed)

    def length(mean: int, low_floor: int) -> int:
        if distribution == "fixed" or length_range == 0:
            return mean
        low, high = max(low_floor, math.floor(mean * (1 - length_range))), math.ceil(mean * (1 + length_range))
        return int(rng.integers(low, high + 1))

    prompts = []
    for _ in range(count):
        n_in, n_out = length(input_tokens, 1), length(output_tokens, 2)
        if n_in >= len(token_ids):
            raise ValueError(f"a prompt of {n_in} tokens needs a longer text than its {len(token_ids)} tokens")
        start = int(rng.integers(0, len(token_ids) - n_in))
        prompts.append(Prompt(decode(list(token_ids[start:start + n_in])), n_in, n_out))
    return prompts


def arrival_times(count: int, rate: float, burstiness: float, seed: int) -> np.ndarray:
    """Send times (s from the level's start) of an open-loop process at ``rate`` requests/s whose gaps
    are gamma(shape=burstiness, mean=1/rate): exponential gaps (Poisson) at burstiness 1."""
    gaps = np.random.default_rng(seed).gamma(burstiness, 1.0 / (rate * burstiness), size=count)
    return np.concatenate([[0.0], np.cumsum(gaps[:-1])])


@dataclass(kw_only=True)
class LevelResult(ServingLevel):
    """One level as measured: the block its record stores, and the energy counter's reading over it
    (which goes to the record's Energy block)."""
    energy: EnergyReading | None = None


def _parse_chunk(line: bytes) -> dict | None:
    """One SSE line -> its JSON payload; None for keep-alives, comments and ``[DONE]``."""
    text = line.decode("utf-8", "replace").strip()
    if not text.startswith("data:"):
        return None
    body = text[5:].strip()
    if not body or body == "[DONE]":
        return None
    return json.loads(body)


async def _one_request(session, url: str, payload: dict, req: ServedRequest, timeout_s: float,
                       fresh_session=None) -> ServedRequest:
    """Send one request and fill ``req`` in place (also when it is cancelled or fails). A request whose kept-alive
    connection fails before any answer is sent again once through ``fresh_session`` (a new connection each)."""
    import aiohttp

    chunks: list[float] = []
    client = [0.0]
    started = time.perf_counter()

    async def stream(through) -> None:
        async with through.post(url, json=payload) as resp:
            req.http_status = resp.status
            if resp.status != 200:
                body = (await resp.text())[:300]
                req.error, req.error_kind = f"HTTP {resp.status}: {' '.join(body.split())}", "http"
                return
            async for line in resp.content:
                now = time.perf_counter()
                data = _parse_chunk(line)
                if data is not None:
                    if data.get("error"):
                        req.error, req.error_kind = f"server error in stream: {data['error']}", "protocol"
                        return
                    choices = data.get("choices") or []
                    if choices and choices[0].get("text"):
                        chunks.append(now)
                    usage = data.get("usage")
                    if usage and usage.get("completion_tokens") is not None:
                        req.output_tokens, req.token_count_source = int(usage["completion_tokens"]), "usage"
                        req.prompt_tokens = usage.get("prompt_tokens")
                client[0] += time.perf_counter() - now

    async def with_one_retry() -> None:
        try:
            await stream(session)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if req.http_status is not None or fresh_session is None:
                raise  # the server had answered: a dropped stream, not a stale connection
            req.retried = True
            await stream(fresh_session)

    try:
        await asyncio.wait_for(with_one_retry(), timeout_s)
    except asyncio.TimeoutError:
        req.error, req.error_kind = f"no complete answer within scenario.request_timeout_s={timeout_s:g}", "timeout"
    except asyncio.CancelledError:
        req.error, req.error_kind = "still in flight at scenario.max_duration_s", "cancelled"
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, ConnectionError) as e:
        req.error, req.error_kind = f"{type(e).__name__}: {e}", "connection"
    except (aiohttp.ClientError, json.JSONDecodeError, UnicodeError) as e:
        req.error, req.error_kind = f"{type(e).__name__}: {e}", "protocol"
    req.client_ms = client[0] * 1e3
    if chunks:
        req.ttft_ms = (chunks[0] - started) * 1e3
        req.itl_ms = [(b - a) * 1e3 for a, b in zip(chunks, chunks[1:])]
        req.e2e_ms = (chunks[-1] - started) * 1e3
    if req.token_count_source == "chunks":
        req.output_tokens = len(chunks)
    if req.error is None and req.output_tokens != req.output_tokens_asked:
        req.error, req.error_kind = (f"returned {req.output_tokens} tokens ({req.token_count_source}), asked "
                                     f"{req.output_tokens_asked}"), "short"
    return req


# 4xx answers that say the request itself is wrong (a model name the server does not serve, a field it rejects);
# 408 (timeout) and 429 (too many requests) are answers about load, which a level measures
_LOAD_STATUSES = (408, 429)


def refusal(req: ServedRequest) -> str | None:
    """The server's message when it refused ``req`` as a bad request (HTTP 4xx other than 408 and 429)."""
    if req.http_status is not None and 400 <= req.http_status < 500 and req.http_status not in _LOAD_STATUSES:
        return req.error
    return None


def completion_payload(model: str, prompt: Prompt, extra: dict | None = None) -> dict:
    """A greedy streamed completion of exactly ``prompt.output_tokens`` tokens: EOS ignored (``ignore_eos``:
    vLLM, SGLang and llama.cpp's server; ``min_tokens``: vLLM and llama-cpp-python's server), usage asked
    for in the stream (servers that do not send it are counted by streamed chunks)."""
    n = prompt.output_tokens
    return {"model": model, "prompt": prompt.text, "max_tokens": n, "min_tokens": n, "ignore_eos": True,
            "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}, **(extra or {})}


class _Refused:
    """The server's message once it has refused the level's first requests (before any completed)."""
    def __init__(self) -> None:
        self.message: str | None = None
        self.answered = False

    def saw(self, req: ServedRequest) -> None:
        if req.ok:
            self.answered = True
        elif not self.answered and self.message is None:
            self.message = refusal(req)


async def _closed_loop(send: Any, sent: list, clients: int, plan: LoadPlan, t0: float, refused: _Refused) -> str:
    """``clients`` clients, each sending its next request when its last one ends, until the level's minimums
    are met (or its deadline, or the server refused the first requests); why the level stopped."""
    deadline = plan.max_duration_s

    async def client() -> None:
        while refused.message is None:
            elapsed = time.perf_counter() - t0
            if elapsed >= deadline or (len(sent) >= plan.min_requests and elapsed >= plan.min_duration_s):
                return
            await send(len(sent), elapsed)

    running = [asyncio.ensure_future(client()) for _ in range(clients)]
    _, pending = await asyncio.wait(running, timeout=deadline)
    for c in pending:
        c.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if refused.message:
        return "the server refused the first requests"
    return "max_duration_s" if pending else "min_requests and min_duration_s reached"


def _schedule(kind: str, level: float, plan: LoadPlan) -> np.ndarray:
    """An open loop's send times: Poisson (or gamma) arrivals at ``level`` requests/s, or all at once (offline)."""
    if kind == "server":
        return arrival_times(max(plan.min_requests, math.ceil(level * plan.min_duration_s)), level, plan.burstiness,
                             plan.seed)
    return np.zeros(plan.min_requests)


async def _open_loop(send: Any, sent: list, times: np.ndarray, plan: LoadPlan, t0: float, refused: _Refused) -> str:
    """Each request sent at its time whether or not earlier ones have finished (until the server refuses the
    first requests: those in flight are cancelled); why the level stopped."""
    deadline = plan.max_duration_s
    for i, at in enumerate(times):
        wait = at - (time.perf_counter() - t0)
        if wait > 0:
            await asyncio.sleep(wait)
        if time.perf_counter() - t0 >= deadline or refused.message:
            break
        send(i, float(at))
    remaining = max(deadline - (time.perf_counter() - t0), 0)
    in_flight = {t for _, t in sent}
    while in_flight and refused.message is None and remaining > 0:
        _, in_flight = await asyncio.wait(in_flight, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        remaining = max(deadline - (time.perf_counter() - t0), 0)
    for t in in_flight:
        t.cancel()
    if refused.message:
        return "the server refused the first requests"
    return "every request answered" if not in_flight and len(sent) == len(times) else "max_duration_s"


async def _level(url: str, model: str, prompts: list[Prompt], kind: str, level: float, plan: LoadPlan,
                 extra: dict | None, meter: Meter | None) -> LevelResult:
    import aiohttp

    endpoint = url.rstrip("/") + "/v1/completions"
    timeout = plan.request_timeout_s
    sent: list[tuple[ServedRequest, asyncio.Task]] = []
    refused = _Refused()
    # no cap on open connections: an open-loop client must never queue a request on its own side; a request
    # retried after a stale kept-alive connection goes through `fresh`, which opens a new connection each time
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as fresh:
        def payload(i: int) -> dict:
            return completion_payload(model, prompts[i % len(prompts)], extra)

        def new_request(i: int, scheduled: float, at: float) -> ServedRequest:
            p = prompts[i % len(prompts)]
            return ServedRequest(index=i, scheduled_s=scheduled, sent_s=at, input_tokens=p.input_tokens,
                                 output_tokens_asked=p.output_tokens)

        for i in range(plan.warmup_requests):  # one at a time, not measured, on the last prompts (a server
            j = len(prompts) - 1 - i % len(prompts)  # with a prefix cache must not have seen the measured ones)
            refused.saw(await _one_request(session, endpoint, payload(j), new_request(j, 0.0, 0.0), timeout, fresh))
            if refused.message:  # nothing measured: the level ends before it starts
                out = _summarise(kind, level, [], 0.0, "the server refused the warm-up request", plan, None)
                out.refused = refused.message
                return out
        if meter:
            meter.start()
        t0 = time.perf_counter()

        async def one(req: ServedRequest, i: int) -> ServedRequest:
            refused.saw(await _one_request(session, endpoint, payload(i), req, timeout, fresh))
            return req

        def send(i: int, scheduled: float) -> asyncio.Task:
            req = new_request(i, scheduled, time.perf_counter() - t0)
            task = asyncio.ensure_future(one(req, i))
            sent.append((req, task))
            return task

        if kind == "concurrency":  # closed loop: each client sends its next request when its last one ends
            stop_reason = await _closed_loop(send, sent, int(level), plan, t0, refused)
        else:  # open loop: requests leave on schedule whether or not earlier ones have finished
            stop_reason = await _open_loop(send, sent, _schedule(kind, level, plan), plan, t0, refused)
        await asyncio.gather(*(t for _, t in sent), return_exceptions=True)
        duration = time.perf_counter() - t0
        energy = meter.stop() if meter else None
    for req, task in sent:  # a task cancelled before it ran never filled its request in
        if task.cancelled() and req.error is None:
            req.error, req.error_kind = ("cancelled: the server refused the first requests" if refused.message
                                         else "still in flight at scenario.max_duration_s"), "cancelled"
    out = _summarise(kind, level, [r for r, _ in sent], duration, stop_reason, plan, energy)
    out.refused = refused.message
    # connection errors alone do not say the target is gone (a server may close one kept-alive connection):
    # it is declared gone only when it no longer answers its health check
    out.target_failed = out.errors.get("connection", 0) > 0 and (await list_models(url, 5.0))[1] is not None
    return out


def _summarise(kind: str, level: float, reqs: list[ServedRequest], duration: float, stop_reason: str,
               plan: LoadPlan, energy: EnergyReading | None) -> LevelResult:
    res, seed = plan.bootstrap_resamples, plan.seed
    out = LevelResult(kind=kind, level=level, requests=reqs, duration_s=duration, stop_reason=stop_reason,
                      load_generator=LOAD_GENERATOR, energy=energy)
    good = [r for r in reqs if r.ok]
    out.completed, out.failed = len(good), len(reqs) - len(good)
    for r in reqs:
        if r.error_kind:
            out.errors[r.error_kind] = out.errors.get(r.error_kind, 0) + 1
    out.retries = sum(r.retried for r in reqs)
    ends = [r.sent_s + r.e2e_ms / 1e3 for r in good]
    span = (max(ends) - min(r.sent_s for r in reqs)) if good else duration
    if good and span > 0:
        out.request_throughput = len(good) / span
        out.output_token_throughput = sum(r.output_tokens for r in good) / span
        out.input_token_throughput = sum(r.prompt_tokens or r.input_tokens for r in good) / span
        out.duration_s = span
    if kind == "server" and reqs:
        out.offered_rate = level
        sends, planned = sorted(r.sent_s for r in reqs), sorted(r.scheduled_s for r in reqs)
        if len(sends) > 1 and sends[-1] > sends[0]:
            out.achieved_send_rate = (len(sends) - 1) / (sends[-1] - sends[0])
        if len(planned) > 1 and planned[-1] > planned[0]:
            out.scheduled_rate = (len(planned) - 1) / (planned[-1] - planned[0])
        out.send_lag_ms = summarize([(r.sent_s - r.scheduled_s) * 1e3 for r in reqs], res, seed=seed, unit=BY_REQUEST)
    if good:
        out.ttft_ms = summarize([r.ttft_ms for r in good], res, seed=seed, unit=BY_REQUEST)
        out.e2e_ms = summarize([r.e2e_ms for r in good], res, seed=seed, unit=BY_REQUEST)
        tpots = [r.tpot_ms for r in good if r.tpot_ms is not None]
        if tpots:
            out.tpot_ms = summarize(tpots, res, seed=seed, unit=BY_REQUEST)
            out.tpot_p99_ci = percentile_interval(tpots, 99, res, seed=seed)
        out.ttft_p99_ci = percentile_interval([r.ttft_ms for r in good], 99, res, seed=seed)
        if any(r.itl_ms for r in good):
            out.itl_ms = summarize_groups([r.itl_ms for r in good], res, seed=seed, unit=BY_REQUEST)
        tokens = sum(r.output_tokens for r in good)
        streamed = sum(len(r.itl_ms) + 1 for r in good if r.ttft_ms is not None)
        out.client_ms_per_token = sum(r.client_ms for r in good) / max(streamed, 1)
        if energy is not None and energy.joules is not None and tokens:
            out.energy_j_per_output_token = energy.joules / tokens
    return out


def percentile_interval(samples: Sequence[float], q: float, resamples: int = 2000, level: float = CI_LEVEL,
                        seed: int = 0) -> tuple[float, float]:
    """A percentile's bootstrap interval over independent samples (whole requests)."""
    x = np.asarray(samples, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    values = np.percentile(x[idx], q, axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def run_level(url: str, model: str, prompts: list[Prompt], kind: str, level: float, plan: LoadPlan,
              extra: dict | None = None, meter: Meter | None = None) -> LevelResult:
    """One level of load against ``url`` (the server's base URL, without /v1)."""
    if not prompts:
        raise ValueError("no prompts to send")
    return asyncio.run(_level(url, model, prompts, kind, level, plan, extra, meter))
