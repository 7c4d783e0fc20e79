"""The ServingRecord: one serving point (a target at one level of load), stored apart from RunRecords
(harness/results/store.py). Units in field names; every request raw beside the summaries."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from harness.results.schema import Energy, Stats, Status, _Block, _PointRecord  # noqa: F401

__all__ = ["SERVING_SCHEMA_VERSION", "ServedRequestBlock", "TargetBlock", "ServingBlock", "ServingRecord"]

SERVING_SCHEMA_VERSION = 1


class ServedRequestBlock(_Block):
    """One request of a serving level, as the client saw it (raw: a report can recompute everything)."""
    index: int
    scheduled_s: float  # when the schedule meant it to leave, from the level's start
    sent_s: float
    input_tokens: int  # as asked
    output_tokens_asked: int
    output_tokens: int  # as the server counted them (usage), else streamed chunks with text
    prompt_tokens: Optional[int] = None  # as the server counted the prompt, when it says
    token_count_source: str = "chunks"
    ttft_ms: Optional[float] = None
    itl_ms: list[float] = Field(default_factory=list)
    e2e_ms: Optional[float] = None
    error: Optional[str] = None  # null: completed with every token asked
    error_kind: Optional[str] = None  # connection | http | timeout | short | cancelled | protocol
    client_ms: float = 0.0


class TargetBlock(_Block):
    """The server a serving point loaded."""
    url: str
    launched: bool  # started by meekbench for this sweep (else given by scenario.target.url)
    api_model: str
    engine: Optional[str] = None  # what serves: the engine's name when launched, else as the user's config says
    launch_command: Optional[list[str]] = None
    server_log: Optional[str] = None


class ServingBlock(_Block):
    """One level of load (harness/measure/serving.py defines every figure); intervals resample requests."""
    kind: Literal["server", "concurrency", "offline"]
    level: float  # requests/s (server), clients (concurrency), requests at once (offline)
    duration_s: float
    stop_reason: str
    completed: int
    failed: int
    errors: dict[str, int] = Field(default_factory=dict)
    target_failed: bool = False
    request_throughput: Optional[float] = None
    output_token_throughput: Optional[float] = None
    input_token_throughput: Optional[float] = None
    offered_rate: Optional[float] = None
    scheduled_rate: Optional[float] = None  # the seeded arrival sample's own rate
    achieved_send_rate: Optional[float] = None
    ttft_ms: Optional[Stats] = None
    tpot_ms: Optional[Stats] = None
    itl_ms: Optional[Stats] = None
    e2e_ms: Optional[Stats] = None
    ttft_p99_ci: Optional[tuple[float, float]] = None
    tpot_p99_ci: Optional[tuple[float, float]] = None
    send_lag_ms: Optional[Stats] = None  # the load generator's lateness against its schedule
    client_ms_per_token: Optional[float] = None  # the load generator's own chunk handling per token
    energy_j_per_output_token: Optional[float] = None
    load_generator: str = ""
    requests: list[ServedRequestBlock] = Field(default_factory=list)


class ServingRecord(_PointRecord):
    """One serving point: a target (model x engine x variant behind an endpoint) at one level of one
    scenario. Stored apart from RunRecords (store.py); a point's identity includes its level."""
    schema_version: Literal[1] = SERVING_SCHEMA_VERSION
    record_kind: Literal["serving"] = "serving"
    target: Optional[TargetBlock] = None
    serving: Optional[ServingBlock] = None
