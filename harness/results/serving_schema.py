"""The ServingRecord: one serving point (a target at one level of load), stored apart from RunRecords
(harness/results/store.py). Units in field names; every request raw beside the summaries."""
from __future__ import annotations

from typing import Literal, Optional

from harness.blocks import ServedRequest, ServingAcrossRuns, ServingLevel, ServingRun
from harness.results.record_base import _Block, _PointRecord

__all__ = ["SERVING_SCHEMA_VERSION", "ServedRequest", "TargetBlock", "ServingLevel", "ServingAcrossRuns", "ServingRun",
           "ServingRecord"]

SERVING_SCHEMA_VERSION = 1


class TargetBlock(_Block):
    """The server a serving point loaded."""
    url: str
    launched: bool  # started by meekbench for this sweep (else given by scenario.target.url)
    api_model: str
    engine: Optional[str] = None  # what serves: the engine's name when launched, else as the user's config says
    launch_command: Optional[list[str]] = None
    server_log: Optional[str] = None


class ServingRecord(_PointRecord):
    """One serving point: a target (model x engine x variant behind an endpoint) at one level of one
    scenario. Stored apart from RunRecords (store.py); a point's identity includes its level."""
    schema_version: Literal[1] = SERVING_SCHEMA_VERSION
    record_kind: Literal["serving"] = "serving"
    target: Optional[TargetBlock] = None
    serving: Optional[ServingLevel] = None
