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


def test_blocks_and_isolate_are_leaves():
    for module in ("harness.blocks", "harness.isolate"):
        assert {t for t in graph()[module] if t.startswith("harness")} == set(), module


def _defined_dataclasses(package: str) -> list[type]:
    import importlib
    import inspect

    found = []
    for module in sorted(m for m in graph() if m.startswith(package)):
        for _, obj in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if obj.__module__ == module and dataclasses.is_dataclass(obj):
                found.append(obj)
    return found


def test_a_record_stores_the_blocks_measurement_returns_with_no_mirror():
    """One definition per measured thing (harness/blocks.py): the record's fields are typed by the very
    classes measurement, engines and variants return, and none of those packages defines a look-alike."""
    import typing

    from harness import blocks
    from harness.engines import EngineInfo
    from harness.measure.latency import Latency
    from harness.measure.memory import Memory
    from harness.measure.quality import Quality
    from harness.measure.serving import ServedRequest
    from harness.results.schema import RunRecord, ServingRecord
    from harness.variants import VariantInfo

    assert (Latency, Memory, Quality, EngineInfo, VariantInfo, ServedRequest) == (
        blocks.Latency, blocks.Memory, blocks.Quality, blocks.EngineInfo, blocks.VariantInfo, blocks.ServedRequest)
    fields = {**{name: RunRecord for name in ("quality", "latency", "memory", "roofline", "fidelity", "energy",
                                              "hardware", "variant", "engine")}, "serving": ServingRecord}
    for name, record in fields.items():
        annotation = record.model_fields[name].annotation
        types = typing.get_args(annotation) or (annotation,)
        assert any(getattr(t, "__module__", "") == "harness.blocks" for t in types), (name, annotation)
    shapes = {frozenset(_fields(b)): b.__name__ for b in vars(blocks).values()
              if isinstance(b, type) and dataclasses.is_dataclass(b)}
    assert len(shapes) >= 16
    for package in ("harness.measure", "harness.engines", "harness.variants"):
        for cls in _defined_dataclasses(package):
            twin = shapes.get(frozenset(_fields(cls)))
            assert twin is None, f"{cls.__module__}.{cls.__name__} mirrors harness.blocks.{twin}"


def test_a_serving_sweep_is_orchestration_like_a_point():
    """harness/serve.py runs the load generator (measure), a server (engines) and writes records
    (results); it reads no report or projection, and builds no record field itself."""
    assert _violations("harness.serve", ("harness.report", "harness.projector")) == []
    source = (ROOT / "serve.py").read_text()
    assert "ServingRecord(" not in source and "Block(" not in source
    assert _violations("harness.results.serving", ("harness.measure", "harness.report", "torch")) == []
