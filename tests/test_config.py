"""Config checked at compose: every shipped option instantiates, and a bad value exits before anything loads."""
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness.config import CONF_DIR, ConfigValueError, refuse_unknown_keys


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _with_axes(group: str, option: str) -> list[str]:
    """A shipped option with the other axes it needs, read from the registries: a variant runs on the first
    engine that prepares its kind, a serving scenario on the first engine that starts a server, an engine
    measured only behind its server in a serving scenario (and the model's own GGUF file needs a model that
    ships one)."""
    from harness.config import engine_schemas, scenario_specs, server_engines

    engine, scenario = None, []
    if group == "engine" and not engine_schemas()[option].prepare:  # measured only behind its server
        scenario = [f"scenario={next(n for n, spec in scenario_specs().items() if spec.serving)}"]
    if group == "variant":
        kind = OmegaConf.load(CONF_DIR / "variant" / f"{option}.yaml").get("kind", "baseline")
        engine = next(n for n, cls in engine_schemas().items() if kind in cls.variant_kinds)
    elif group == "scenario" and scenario_specs()[option].serving:
        engine = server_engines()[0]
    extra = ["model=smollm2-135m-instruct"] if option == "gguf-shipped" else []
    return [f"{group}={option}", *([f"engine={engine}"] if engine else []), *scenario, *extra]


SHIPPED = ([("run", _with_axes(group, option)) for group in ("model", "variant", "engine", "bench", "eval", "hardware",
                                                                              "scenario")
            for option in _options(group)]
           + [("project", [f"projector={option}"]) for option in _options("projector")]
           + [("build_grid", [f"grid={option}"]) for option in _options("grid")]
           + [(name, []) for name in ("build_tiny", "build_tasks", "fit_law", "report", "summary")])


def _instantiate(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose(config_name=name, overrides=overrides))


def test_every_shipped_config_option_passes_its_checks():
    failures = []
    for name, overrides in SHIPPED:
        try:
            refuse_unknown_keys(_instantiate(name, overrides))
        except ConfigValueError as e:
            failures.append(f"{name} {overrides}: {e}")
    assert not failures, "\n".join(failures)
    assert len(SHIPPED) > 50  # the options were found


@pytest.mark.parametrize("name, override, key", [
    ("run", "bench.new_tokens=1", "bench.new_tokens"),
    ("run", "variant.dtype=float8", "variant.dtype"),
    ("run", "quality.stride=4096", "quality.stride"),
    ("run", "compare.ci_level=95", "compare.ci_level"),
    ("run", "engine.name=vllm", "engine.name"),
    ("run", "bench.batch_sizes=[]", "bench.batch_sizes"),  # was an ok record with no latency
    ("run", "scenario.target.url=http://127.0.0.1:9", "scenario.target.url"),  # was ignored: measured locally
    ("run", "variant=gguf-q4_k_m", "variant.kind=gguf"),  # a llama.cpp file type on the transformers engine
    ("run", "variant=bnb-nf4 engine=llamacpp", "variant.kind=quantise"),
    ("run", "variant=gguf-q4_k_m engine=llamacpp variant.method=Q4_K_X", "variant.method"),
    ("run", "variant=gguf-shipped engine=llamacpp model=tiny-s", "variant.method=shipped"),
    ("run", "engine=onnxruntime variant=bf16", "variant.dtype"),
    ("run", "engine=onnxruntime variant=ort-int4 variant.method=int3", "variant.method"),
    ("run", "variant=ort-int4", "variant.kind=onnx"),  # an ONNX Runtime variant on the transformers engine
    ("run", "engine=onnxruntime engine.int4_block_size=48", "engine.int4_block_size"),
    ("run", "scenario=server", "scenario.kind=server"),  # no URL, and transformers has no server meekbench starts
    ("run", "scenario=server engine=llamacpp scenario.levels=[1,-2]", "scenario.levels.1=-2"),
    ("run", "scenario=concurrency engine=llamacpp scenario.levels=[1.5]", "scenario.levels.0=1.5"),
    ("run", "scenario=server scenario.target.url=gpu-node:8000", "scenario.target.url"),
    ("run", "scenario=server engine=llamacpp scenario.kind=closed", "scenario.kind"),
    ("run", "scenario=concurrency engine=llamacpp engine.server=vllm", "engine.server"),
    ("run", "scenario=concurrency engine=llamacpp engine.server=llama-cpp-python engine.parallel=4", "engine.parallel"),
    ("run", "scenario=concurrency engine=llamacpp scenario.search.slo=mlperf", "scenario.search.slo"),
    ("run", "scenario=offline engine=llamacpp scenario.search.enabled=true", "scenario.search.enabled=true"),
    ("report", "judge.slo.percentile=100.5", "judge.slo.percentile"),
    ("project", "projector.inference.measured_point=batch", "projector.inference.measured_point"),
    ("project", "projector.inference.slo.ttft_ms=0", "projector.inference.slo.ttft_ms"),
    ("project", "projector.law.transfer=exponentt", "projector.law.transfer"),
    ("project", "projector.law.source=chinchila", "projector.law.source"),
    ("project", "projector.inference.cost_source=guess", "projector.inference.cost_source"),
    ("report", "+judge.prices.cpu=-2", "judge.prices.cpu"),
    ("build_tiny", "warmup_fraction=1.5", "warmup_fraction"),
    ("build_grid", "lr_rule.ref=0", "lr_rule.ref"),
])
def test_a_bad_value_is_refused_naming_the_key_the_value_and_what_is_valid(name, override, key):
    """``key`` is the key refused, or key=value where the bad value comes from a config group."""
    with pytest.raises(ConfigValueError) as caught:
        _instantiate(name, override.split())
    message = str(caught.value)
    key, value = key.split("=") if "=" in key else (key, override.split()[-1].split("=", 1)[1])
    assert message.startswith(f"{key}=") and value in message and "valid:" in message


@pytest.mark.parametrize("command, override", [
    ("run", "bench.new_tokens=1"),  # was a failed record after the model had loaded
    ("run", "hardware.device=gpu0"),
    ("project", "projector.monte_carlo=-5"),
    ("run", "+bench.new_token=8"),  # a typo Hydra's own hint (+key) would let through, changing nothing
])
def test_the_cli_exits_with_status_2_before_anything_loads(command, override, tmp_path):
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "harness", command, override, f"results_dir={tmp_path}"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    key = override.split("=", 1)[0]
    said = f"{key[1:]} is not a key of" if key.startswith("+") else f"{key}="
    assert f"meekbench: bad config: {said}" in out.stderr and "valid:" in out.stderr
    assert not list(tmp_path.rglob("*.json")), "nothing was measured or written"
    print(f"{command} {override}: refused in {time.perf_counter() - started:.1f} s")


@pytest.mark.parametrize("command, override, hydra_says", [
    ("run", "bench.new_token=8", "Could not override 'bench.new_token'"),  # a mistyped key
    ("run", "bench.new_tokens=many", "bench.new_tokens"),  # a string for a number
    ("run", "engine=nosuch", "engine"),  # an option the group does not have
])
def test_a_config_hydra_cannot_compose_exits_2_with_its_message(command, override, hydra_says, tmp_path):
    """Hydra's own compose errors keep its message and exit 2 with `meekbench: bad config`, as the
    README says (they exited 1, like a failed point)."""
    out = subprocess.run([sys.executable, "-m", "harness", command, override, f"results_dir={tmp_path / 'r'}"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert hydra_says in out.stderr and "meekbench: bad config (Hydra's message above)" in out.stderr
    assert not (tmp_path / "r").exists()


def test_summary_of_a_missing_directory_says_so_and_creates_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "summary", f"results_dir={tmp_path / 'nosuch'}"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 2 and "holds no records" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "nosuch").exists()


def test_each_closed_set_is_named_once_and_matches_what_acts_on_it():
    from harness import config
    from harness.projector.inputs import PUBLISHED
    from harness.variants import DTYPES, _registry

    assert tuple(DTYPES) == config.DTYPE_NAMES
    assert set(config.LAW_SOURCES) == {"paper", "measured", *PUBLISHED}
    from harness.engines.llamacpp import file_types

    assert set(config.GGUF_FILE_TYPES) - {"shipped"} <= set(file_types())
    from harness.engines.onnxrt import METHOD_LABELS

    assert set(config.ONNX_METHODS) == set(METHOD_LABELS) - {"fp32"}
    # the transformers engine prepares exactly the kinds harness.variants registers
    assert config.engine_schemas()["transformers"].variant_kinds == tuple(_registry())


def test_every_registered_engine_has_its_yaml_its_implementation_and_its_schema_in_the_store():
    """The engine registry is the one source: each schema's YAML composes to that schema, its prepare (and
    server, where it has one) import, and a variant kind no engine prepares is refused at compose."""
    from hydra.core.config_store import ConfigStore

    from harness import config

    schemas = {n: cls for n, cls in config.engine_schemas().items() if cls.__module__.startswith("harness.")}
    assert set(schemas) == {p.stem for p in (config.CONF_DIR / "engine").glob("*.yaml")}
    for name, cls in schemas.items():
        assert ConfigStore.instance().load(f"engine/{name}_schema.yaml").node._metadata.object_type is cls
        assert cls.prepare or cls.serve, name
        if cls.prepare:
            assert callable(config.implementation(cls.prepare)), name
        if cls.serve:
            assert callable(config.implementation(cls.serve)), name
        rc = _instantiate("run", _with_axes("engine", name) + ["variant=fp32"])
        assert type(rc.engine) is cls
    every = config.engine_schemas()  # tests may register engines of their own (tests/test_registries.py)
    assert set(config.variant_kinds()) == {k for cls in every.values() for k in cls.variant_kinds}
    assert config.server_engines() == tuple(n for n, cls in every.items() if cls.serve)


def test_the_serving_scenarios_are_the_ones_a_serving_record_holds():
    from typing import get_args, get_type_hints

    from harness import config
    from harness.results.schema import ServingLevel

    specs = {n: s for n, s in config.scenario_specs().items() if s.run.startswith("harness.")}
    assert {n for n, s in specs.items() if s.serving} == set(get_args(get_type_hints(ServingLevel)["kind"]))
    assert {p.stem for p in (config.CONF_DIR / "scenario").glob("*.yaml")} == set(specs)
    for spec in specs.values():
        assert callable(config.implementation(spec.run)), spec.name


def test_point_keys_of_the_shipped_engines_are_those_records_were_written_with():
    """Keys written before the engine registry (one flat engine schema) hashed name, threads and
    int4_block_size for every engine; the registry's schemas keep those keys, so a re-run finds old records."""
    from harness.results.store import identity

    for name in ("transformers", "llamacpp", "onnxruntime"):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="run", overrides=[f"engine={name}"])
        resolved = OmegaConf.to_container(cfg, resolve=True)
        keyed = identity(resolved)
        assert keyed["engine"] == {"name": name, "threads": None, "int4_block_size": 32}, name
    # the server a serving point starts is part of what it measures; an SLO search's settings are not
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="run", overrides=["engine=llamacpp", "scenario=concurrency"])
    keyed = identity(OmegaConf.to_container(cfg, resolve=True))
    assert keyed["engine"]["server"] == "llama-server" and keyed["engine"]["parallel"] == 4
    assert "search" not in keyed["scenario"] and "levels" not in keyed["scenario"]


@pytest.mark.parametrize("command, override, named", [
    ("report", "results_dirs=[{tmp}/nosuchdir]", "nosuchdir does not exist"),
    ("fit-law", "grid_name=nosuchgrid", "grids built under"),
    # a malformed input file: named, with why, and nothing written (report wrote an empty report, exit 0;
    # summary said "no records", exit 0; a malformed law was a traceback)
    ("report", "results_dirs=[{tmp}/malformed]", "record.json: not readable JSON"),
    ("summary", "results_dir={tmp}/malformed", "record.json: not readable JSON"),
    ("project", "projector=measured projector.law.measured_path={tmp}/malformed/runs/x/record.json",
     "is not a law `meekbench fit-law` wrote"),
    # a law file named on the command line that is not there (was the paper's law, silently, exit 0)
    ("project", "projector=measured projector.law.measured_path={tmp}/law.json", "law.json does not exist"),
    ("build-tiny", "only=[tiny-q]", "names ['tiny-q'], not in the family; valid:"),  # was a traceback
])
def test_a_bad_path_is_one_line_naming_it_and_nothing_is_written(command, override, named, tmp_path):
    bad = tmp_path / "malformed" / "runs" / "x"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text('{"schema_version": 3, "model": ')
    out = subprocess.run([sys.executable, "-m", "harness", command, f"models_dir={tmp_path}/models",
                          f"results_dir={tmp_path}/results", *override.format(tmp=tmp_path).split()],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith("meekbench: ") and named in out.stderr
    assert not (tmp_path / "nosuchdir").exists() and not list(tmp_path.rglob("*.md"))
    assert not (tmp_path / "models").exists() and not (tmp_path / "malformed" / "report").exists()
