"""DESIGN.md's one-way flow, checked on the source: who may import whom, and the record contract."""
import ast
import dataclasses
import subprocess
import sys
from pathlib import Path


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


def reach() -> dict[str, set[str]]:
    """harness module -> every module it imports, directly or through other harness modules (lazy imports
    count: they run when the code path does). A package's own ``__init__`` runs on import of any module in it."""
    g = graph()
    for module in list(g):
        parts = module.split(".")
        g[module] |= {".".join(parts[:i]) for i in range(2, len(parts))} & set(g)
    closed = {}
    for module in g:
        seen, todo = set(), [module]
        while todo:
            for target in g.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        closed[module] = seen
    return closed


def _violations(package: str, forbidden: tuple[str, ...], direct: bool = False) -> list[str]:
    edges = graph() if direct else reach()
    return [f"{module} imports {target}" for module, targets in edges.items()
            if module == package or module.startswith(package + ".")
            for target in sorted(targets) if any(target == f or target.startswith(f + ".") for f in forbidden)]


AFTER_THE_RECORD = ("harness.results", "harness.report", "harness.projector", "harness.run", "harness.cli",
                    "harness.scenarios")


def test_the_config_imports_nothing_downstream_and_no_torch():
    """Engines and scenarios are registered by name and "module:function" in the config, so composing and
    checking a config (every command's first step) imports no engine, scenario, model or torch."""
    assert _violations("harness.config", ("torch", "harness.engines", "harness.scenarios", "harness.models",
                                          "harness.variants", "harness.measure", *AFTER_THE_RECORD)) == []
    code = "import sys, harness.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_engines_sit_between_variants_and_measurement():
    """An engine turns a prepared model into what measurement reads; it never reads records or reports,
    and never reaches the scenarios that run it."""
    assert _violations("harness.engines", (*AFTER_THE_RECORD, "harness.launch.job_stop")) == []


def test_measurement_imports_no_results_config_or_tiny():
    assert _violations("harness.measure", ("harness.results", "harness.config", "harness.tiny", "harness.engines",
                                           "harness.scenarios", "harness.models", "harness.variants")) == []


def test_results_import_nothing_from_measure_nor_torch():
    assert _violations("harness.results", ("harness.measure", "torch", "harness.variants", "harness.models",
                                           "harness.engines", "harness.scenarios")) == []
    code = ("import sys, harness.results.record, harness.results.comparison, harness.results.store; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_projector_imports_no_torch():
    assert _violations("harness.projector", ("torch", "harness.measure", "harness.variants", "harness.models",
                                             "harness.report")) == []  # report and projector are siblings


def test_leaves_import_no_harness_module():
    for module in ("harness.io", "harness.blocks", "harness.launch.isolate"):
        assert {t for t in graph()[module] if t.startswith("harness")} == set(), module


def test_models_tiny_and_variants_come_before_records_reports_and_projections():
    """The flow is config -> model -> variant -> measurements -> record -> report/projector: the
    stages before the record import nothing after it (cards and the grid write through harness.io)."""
    for package in ("harness.models", "harness.tiny", "harness.variants"):
        assert _violations(package, AFTER_THE_RECORD) == [], package


def _compared_strings(module: str) -> set[str]:
    """The string constants a module compares something with (``==``, ``!=``, ``in``)."""
    path = ROOT.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT.parent / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                elts = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                found |= {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return found


def test_no_module_branches_on_an_engine_name():
    """What differs between engines lives in their schema and module: no other module tests an engine's
    name (a new engine touches no file but its own, its schema and its YAML)."""
    from harness.config import engine_names

    own = ("harness.config.engines", "harness.engines")
    branches = {m: _compared_strings(m) & set(engine_names()) for m in graph()
                if not any(m == o or m.startswith(o + ".") for o in own)}
    assert {m: names for m, names in branches.items() if names} == {}


def _record_classes() -> set[str]:
    from harness.results import record_base, schema

    return {name for mod in (schema, record_base) for name, obj in vars(mod).items()
            if isinstance(obj, type) and obj.__module__.startswith("harness.results")}


def test_orchestration_builds_no_record_field_itself():
    """harness/run.py and the scenarios hand what they measured to harness/results/record.py, which alone
    builds a record's blocks: no call of a record class in them."""
    names = _record_classes()
    for module in [m for m in graph() if m == "harness.run" or m.startswith("harness.scenarios")]:
        path = ROOT.parent / (module.replace(".", "/") + ".py")
        if not path.exists():
            continue
        tree = ast.parse(path.read_text())
        calls = {getattr(n.func, "attr", getattr(n.func, "id", None)) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert not calls & names, (module, calls & names)


def _fields(cls) -> set[str]:
    return set(cls.model_fields) if hasattr(cls, "model_fields") else {f.name for f in dataclasses.fields(cls)}


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
