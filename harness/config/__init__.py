"""Structured config schemas, registered in Hydra's ConfigStore.

The YAML files under conf/ hold values; these dataclasses hold types, so a typo'd key or a
string where a number belongs fails at compose time with Hydra's message, and each schema's
__post_init__ checks ranges and closed sets (checks.py) when the config is instantiated.
"""
from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore

# every schema and closed set, importable as harness.config.X
from harness.config.build import *  # noqa: F401,F403
from harness.config.engines import *  # noqa: F401,F403
from harness.config.checks import *  # noqa: F401,F403
from harness.config.point import *  # noqa: F401,F403
from harness.config.projector import *  # noqa: F401,F403
from harness.config.serving import *  # noqa: F401,F403
from harness.config.build import BuildTasksConfig, GridConfig, LawFitConfig, TinyBuildConfig
from harness.config.point import (Bnb4bitOptions, BnbInt8Options, DistilOptions, GroupedInt4Options, NoOptions,
                                  ReportConfig, RunConfig, SummaryConfig, TorchDynamicOptions)
from harness.config.projector import ProjectConfig

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CONF_DIR = REPO_ROOT / "conf"


VARIANT_OPTIONS = {"none": NoOptions, "bnb_int8": BnbInt8Options, "bnb_4bit": Bnb4bitOptions,
                   "grouped_int4": GroupedInt4Options, "torch_dynamic": TorchDynamicOptions, "distil": DistilOptions}


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(name="build_tiny_schema", node=TinyBuildConfig)
    cs.store(name="build_tasks_schema", node=BuildTasksConfig)
    cs.store(name="build_grid_schema", node=GridConfig)
    cs.store(name="fit_law_schema", node=LawFitConfig)
    cs.store(name="summary_schema", node=SummaryConfig)
    cs.store(name="report_schema", node=ReportConfig)
    cs.store(name="project_schema", node=ProjectConfig)
    for name, node in VARIANT_OPTIONS.items():  # variant YAMLs pick theirs: `- /variant_options@options: <name>`
        cs.store(group="variant_options", name=name, node=node)


register()
