"""What every record of a point shares (RunRecord in schema.py, ServingRecord in serving_schema.py): the
block base, the model and launch blocks, and the point's identity, status and provenance. Its own module
so that both record schemas import it and neither imports the other."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from harness.blocks import EngineInfo, Energy, Hardware, VariantInfo

Status = Literal["ok", "failed", "unsupported", "oom", "not_built"]  # not_built: an engine this machine has not built


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), from_attributes=True)


class ModelBlock(_Block):
    name: str
    source: str
    family: str = ""
    params: Optional[int] = None
    non_embedding_params: Optional[int] = None
    train_tokens: Optional[int] = None
    train_flops: Optional[float] = None
    distilled_from: Optional[str] = None
    weights: Optional[str] = None  # what the weights are, where not the publisher's (the card's line)


class LaunchBlock(_Block):
    """Where the point ran as the scheduler saw it (all null outside a scheduler)."""
    scheduler: Optional[str] = None  # "slurm" or null (a plain process)
    job_id: Optional[str] = None
    array_job_id: Optional[str] = None
    array_task_id: Optional[str] = None
    node: Optional[str] = None
    partition: Optional[str] = None
    restart_count: Optional[str] = None  # set by SLURM when a job was requeued
    cluster: Optional[str] = None


class _PointRecord(_Block):
    """What every record of a point holds: what it is, what ran it, on what, and how it ended."""
    run_id: str
    point_key: str  # hash of the point's identity (store.IDENTITY) and hardware id
    status: Status
    error: Optional[str] = None
    created_at: str
    duration_s: float
    config: dict[str, Any]
    model: ModelBlock
    variant: VariantInfo
    engine: Optional[EngineInfo] = None
    energy: Optional[Energy] = None
    hardware: Hardware
    software: dict[str, Optional[str]]
    launch: LaunchBlock = Field(default_factory=LaunchBlock)
