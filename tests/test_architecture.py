"""DESIGN.md's one-way flow, checked on the source: who may import whom, and the record contract."""
import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "harness"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    """harness module -> the modules it imports (harness's own and third-party top-level names)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = {m if m.startswith("harness") else m.split(".")[0] for m in imports_of(path)}
    return out


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{module} imports {target}" for module, targets in graph().items() if module.startswith(package)
            for target in sorted(targets) if any(target == f or target.startswith(f + ".") for f in forbidden)]


def test_engines_sit_between_variants_and_measurement():
    """An engine turns a prepared model into what measurement reads; it never reads records or reports."""
    assert _violations("harness.engines", ("harness.results", "harness.report", "harness.projector", "harness.run",
                                           "harness.tiny", "harness.config")) == []


def test_measurement_imports_no_results_config_or_tiny():
    assert _violations("harness.measure", ("harness.results", "harness.config", "harness.tiny", "harness.engines")) == []


def test_results_import_nothing_from_measure_nor_torch():
    assert _violations("harness.results", ("harness.measure", "torch", "harness.variants", "harness.models")) == []
    code = ("import sys, harness.results.record, harness.results.comparison, harness.results.store; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_projector_imports_no_torch():
    assert _violations("harness.projector", ("torch", "harness.measure", "harness.variants", "harness.models",
                                             "harness.report")) == []  # report and projector are siblings


def test_io_is_a_leaf():
    assert {t for t in graph()["harness.io"] if t.startswith("harness")} == set()


def test_models_tiny_and_variants_come_before_records_reports_and_projections():
    """The flow is config -> model -> variant -> measurements -> record -> report/projector: the
    stages before the record import nothing after it (cards and the grid write through harness.io)."""
    later = ("harness.results", "harness.report", "harness.projector", "harness.run", "harness.cli")
    for package in ("harness.models", "harness.cards", "harness.params", "harness.gguf_checkpoint",
                    "harness.tiny", "harness.variants", "harness.train"):
        assert _violations(package, later) == [], package


def test_run_names_no_variant_kind_and_sets_no_record_field():
    source = (ROOT / "run.py").read_text()
    for kind in ('"quantise"', '"distil"', '"baseline"', "_status", "S.RunRecord(", "Block("):
        assert kind not in source, kind


def _fields(cls) -> set[str]:
    return set(cls.model_fields) if hasattr(cls, "model_fields") else {f.name for f in dataclasses.fields(cls)}


def _pairs():
    from harness.measure.energy import EnergyTotal
    from harness.measure.fidelity import Fidelity
    from harness.measure.hardware import Hardware, Probes
    from harness.measure.latency import LatencyResult, LatencyScenario, PairedRatio
    from harness.measure.memory import MemoryResult
    from harness.measure.quality import HeldoutQuality
    from harness.measure.roofline import Roofline
    from harness.measure.stats import SampleStats
    from harness.measure.tasks import TaskScore
    from harness.results import schema as S
    from harness.results.record import HEADLINE
    from harness.variants import VariantInfo

    # (measurement type, record block, fields only the block has: filled by the record builder)
    return [(SampleStats, S.Stats, set()), (Probes, S.ProbesBlock, set()), (Roofline, S.RooflineBlock, set()),
            (Fidelity, S.FidelityBlock, set()), (EnergyTotal, S.EnergyBlock, set()), (MemoryResult, S.MemoryBlock, set()),
            (LatencyScenario, S.LatencyScenarioBlock, set()), (TaskScore, S.TaskScore, set()),
            (VariantInfo, S.VariantBlock, set()), (Hardware, S.HardwareBlock, {"probes"}),
            (PairedRatio, S.PairedRatioBlock, set()), (LatencyResult, S.LatencyBlock, set(HEADLINE)),
            (HeldoutQuality, S.QualityBlock, {"tasks", "lm_eval_version", "samples_path"})]


@pytest.mark.parametrize("index", range(13))
def test_measurement_types_and_record_blocks_agree(index):
    measured, block, builder_only = _pairs()[index]
    assert _fields(measured) == _fields(block) - builder_only, (measured.__name__, block.__name__)


def test_a_serving_sweep_is_orchestration_like_a_point():
    """harness/serve.py runs the load generator (measure), a server (engines) and writes records
    (results); it reads no report or projection, and builds no record field itself."""
    assert _violations("harness.serve", ("harness.report", "harness.projector")) == []
    source = (ROOT / "serve.py").read_text()
    assert "ServingRecord(" not in source and "Block(" not in source
    assert _violations("harness.results.serving", ("harness.measure", "harness.report", "torch")) == []


def test_serving_measurements_and_their_record_blocks_agree():
    from harness.measure.serving import LevelResult, ServedRequest
    from harness.results import schema as S

    assert _fields(ServedRequest) == _fields(S.ServedRequestBlock)
    assert _fields(LevelResult) - {"energy"} == _fields(S.ServingBlock)  # energy goes to the record's EnergyBlock
