"""The ServingRecord: one serving point (a target at one level of load), stored apart from RunRecords
(harness/results/store.py). Units in field names; every request raw beside the summaries."""
from __future__ import annotations

from typing import Literal, Optional

from harness.blocks import Fidelity, ServedRequest, ServingAcrossRuns, ServingLevel, ServingRun
from harness.results.record_base import _Block, _PointRecord

__all__ = ["SERVING_SCHEMA_VERSION", "ServedRequest", "TargetBlock", "ServedFidelity", "ServingLevel", "ServingAcrossRuns",
           "ServingRun", "ServingRecord"]

SERVING_SCHEMA_VERSION = 1


class TargetBlock(_Block):
    """The server a serving point loaded."""
    url: str
    launched: bool  # started by meekbench for this sweep (else given by scenario.target.url)
    api_model: str
    engine: Optional[str] = None  # what serves: the engine's name when launched, else as the user's config says
    launch_command: Optional[list[str]] = None
    server_log: Optional[str] = None
    startup_s: Optional[float] = None  # from the server's start to its first healthy answer (the level's own server)


class ServedFidelity(_Block):
    """What the server served against the model's transformers fp32 reference, scored through its API on the
    reference's held-out windows (harness/measure/served_fidelity.py); measured once per sweep, on its first
    measured level's server after that level's load. ``reason`` says why a figure is missing."""
    method: str
    reference: Optional[str] = None  # the reference file compared with
    fidelity: Optional[Fidelity] = None  # KL a lower bound ('>='): the server gives its top-k only
    heldout_loss_nats: Optional[float] = None  # the served model's own, exact (the true token's log-probability)
    bits_per_byte: Optional[float] = None
    tokens: Optional[int] = None
    requests: Optional[int] = None
    # a server without prompt log-probabilities: its greedy continuations against the reference model's
    greedy_matched_share: Optional[float] = None  # mean share of the reference's continuation (text) before a difference
    greedy_ci_low: Optional[float] = None  # resampling prompts
    greedy_ci_high: Optional[float] = None
    greedy_prompts: Optional[int] = None
    greedy_new_tokens: Optional[int] = None
    duration_s: Optional[float] = None
    reason: Optional[str] = None


class ServingRecord(_PointRecord):
    """One serving point: a target (model x engine x variant behind an endpoint) at one level of one
    scenario. Stored apart from RunRecords (store.py); a point's identity includes its level."""
    schema_version: Literal[1] = SERVING_SCHEMA_VERSION
    record_kind: Literal["serving"] = "serving"
    target: Optional[TargetBlock] = None
    serving: Optional[ServingLevel] = None
    served_fidelity: Optional[ServedFidelity] = None
