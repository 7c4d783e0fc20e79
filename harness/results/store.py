"""The only module that knows how records lie on disk.

    <results_dir>/runs/<run_id>/record.json     one point (written to a temp file, then renamed)
    <results_dir>/runs/<run_id>/samples/<task>.jsonl   per-sample logs beside it (lm-eval)
    <probe_cache_dir>/<hardware id>-<device>-t<threads>-<settings>.json   cached hardware probes
    <results_dir>/references/<model>--<baseline variant>--<hardware id>--<settings>.npz
        a baseline's next-token distributions on the held-out windows, read by its variants
    <results_dir>/serving/<run_id>/record.json   one serving point (a target at one level of load)
    <results_dir>/serving/<run_id>/server.log    the output of a server meekbench started

A run id is readable and unique per point: ``<model>--<variant>--<hardware label>--<key>``,
where the key hashes the point's identity (``IDENTITY``: what changes a measurement) with the
hardware id, so a re-run on the same machine finds the same directory and can skip it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
from pydantic import TypeAdapter, ValidationError

from harness.config.engines import engine_schemas, not_identity_keys, serving_only_keys
from harness.io import BadInputFile, atomic_file, write_atomic
from harness.results.schema import (SCHEMA_VERSION, SERVING_SCHEMA_VERSION, Probes, RunRecord, ServingRecord,
                                    upgrade_v1, upgrade_v2)

log = logging.getLogger(__name__)

RECORD = "record.json"
_PROBES = TypeAdapter(Probes)  # a cached probe result's JSON
CRASH_TRACEBACK = "crash-traceback.txt"  # faulthandler's traceback of an isolated point whose child crashed
# A point's identity: the config keys that change what it measures (each with everything under it),
# less the exceptions below. Prices, report thresholds, display and paths are not in it, so
# changing them re-measures nothing (point_key docstring).
IDENTITY = ("model", "variant", "engine", "quality", "bench", "eval", "compare", "scenario", "seed", "hardware.device",
            "hardware.label", "hardware.probe_repeats", "hardware.probe_copy_bytes", "hardware.probe_matmul_n")
# The engine's own such keys are marked in its registered schema (harness/config/engines.py: NOT_IDENTITY).
NOT_IDENTITY = ("model.build_hint", "eval.progress_bars", "eval.missing_hint", "compare.build_missing_reference",
                "variant.options.force", "variant.options.out_root", "scenario.levels", "scenario.on_failure",
                "scenario.target.startup_timeout_s", "scenario.search")
# Before the engine registry every engine's config had these keys (one flat schema), so every key written
# then hashed them: an engine schema without them is keyed as if it had them at those values, and a re-run
# finds the records written before (as a single point's key leaves out the scenario axis added later).
LEGACY_ENGINE_KEYS = {"threads": None, "int4_block_size": 32}
# a serving point times a server, not this process: the in-process measurement settings do not touch it
# (its level joins its identity in point_key)
NOT_SERVING_IDENTITY = ("bench", "eval", "compare", "hardware.probe_repeats", "hardware.probe_copy_bytes",
                        "hardware.probe_matmul_n")
# directories named in the config: a path under one is keyed relative to it, so moving models/ keeps keys
_ROOTS = ("models_dir", "results_dir")


def _identity(cfg: dict[str, Any], roots: dict[str, str], left_out: Sequence[str], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in cfg.items():
        dotted = f"{prefix}{k}"
        inside = any(dotted == key or dotted.startswith(key + ".") for key in IDENTITY)
        above = any(key.startswith(dotted + ".") for key in IDENTITY)
        if dotted in left_out or not (inside or above):
            continue
        if isinstance(v, dict):
            out[k] = _identity(v, roots, left_out, dotted + ".")
        elif inside:
            out[k] = _relative(v, roots)
    return out


def _relative(value: Any, roots: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value
    for name, root in roots.items():
        if root and (value == root or value.startswith(root.rstrip("/") + "/")):
            return "${" + name + "}" + value[len(root.rstrip("/")):]
    return value


def _engine_schema(resolved_config: dict[str, Any]) -> Any:
    engine = resolved_config.get("engine")
    return engine_schemas().get(engine.get("name")) if isinstance(engine, dict) else None


def _engine_not_identity(resolved_config: dict[str, Any]) -> tuple[str, ...]:
    """The point's engine's keys that change no measurement, as its registered schema marks them."""
    schema = _engine_schema(resolved_config)
    return not_identity_keys(schema) if schema else ()


def engine_serving_only_keys(resolved_config: dict[str, Any]) -> tuple[str, ...]:
    """The point's engine's keys that configure only the server it starts."""
    schema = _engine_schema(resolved_config)
    return serving_only_keys(schema) if schema else ()


def identity(resolved_config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that is the point's identity (see IDENTITY), less the engine's keys
    that change no measurement (from its schema)."""
    roots = {name: str(resolved_config.get(name) or "") for name in _ROOTS}
    out = _identity(resolved_config, roots, (*NOT_IDENTITY, *_engine_not_identity(resolved_config)))
    if isinstance(out.get("engine"), dict):
        out["engine"] = {**LEGACY_ENGINE_KEYS, **out["engine"]}
    if (out.get("bench") or {}).get("runs") == 1:  # one run: the key as before bench.runs existed
        out["bench"].pop("runs")
    kind = (out.get("scenario") or {}).get("kind", "single")
    if kind == "single":  # one request at a time: keys as before the scenario axis existed
        out.pop("scenario", None)
        for dotted in engine_serving_only_keys(resolved_config):  # the started server's settings do not touch it
            (out.get("engine") or {}).pop(dotted.removeprefix("engine."), None)
    else:
        if out["scenario"].get("runs") == 1:  # one run: the key as before scenario.runs existed
            out["scenario"].pop("runs")
        for dotted in NOT_SERVING_IDENTITY:
            *parents, leaf = dotted.split(".")
            node = out
            for name in parents:
                node = node.get(name) or {}
            node.pop(leaf, None)
    return out


def point_key(resolved_config: dict[str, Any], hardware_id: str, level: float | None = None) -> str:
    """Hash of the point's identity and the machine's: a re-run with a different price, report
    setting, display flag or directory finds the same key and skips the point. ``level``: a serving
    point's level of load (one of scenario.levels)."""
    config = identity(resolved_config)
    if level is not None:
        config["scenario"]["level"] = float(level)
    blob = json.dumps({"config": config, "hardware": hardware_id}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def run_id_for(model: str, variant: str, hardware_label: str, key: str) -> str:
    return f"{_safe(model)}--{_safe(variant)}--{_safe(hardware_label)}--{key}"


def run_dir(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "runs" / run_id


def write_record(results_dir: str | Path, record: RunRecord) -> Path:
    return write_atomic(run_dir(results_dir, record.run_id) / RECORD, record.model_dump_json(indent=1))


def write_samples(results_dir: str | Path, run_id: str, samples: Mapping[str, Iterable[dict]]) -> Path:
    """Per-sample logs, one JSONL file per task, each written atomically; returns their directory."""
    out = run_dir(results_dir, run_id) / "samples"
    for task, rows in samples.items():
        write_atomic(out / f"{_safe(task)}.jsonl", "".join(json.dumps(row, default=str) + "\n" for row in rows))
    return out


def probes_path(cache_dir: str | Path, hardware_id: str, device_type: str, threads: int,
                settings: Mapping[str, Any]) -> Path:
    """One cache file per machine, device, thread count and probe settings (sizes, repeats)."""
    tag = hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode()).hexdigest()[:8]
    return Path(cache_dir) / f"{hardware_id}-{device_type}-t{threads}-{tag}.json"


def read_probes(path: Path) -> Probes | None:
    """The cached probe result, or None when absent or unreadable (then it is measured again)."""
    try:
        return _PROBES.validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def write_probes(path: Path, probes: Probes) -> Probes:
    """Cache a probe result."""
    write_atomic(path, _PROBES.dump_json(probes).decode())
    return probes


def read_samples(samples_dir: str | Path | None) -> dict[str, list[dict]]:
    """Per-sample logs written by ``write_samples``: task -> rows ({} when there are none)."""
    if not samples_dir or not Path(samples_dir).is_dir():
        return {}
    return {p.stem: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            for p in sorted(Path(samples_dir).glob("*.jsonl"))}


def settings_tag(settings: Mapping[str, Any]) -> str:
    """A short hash of the settings that make two held-out passes comparable (text hash, windows, k,
    the model's source): two points' distributions are compared only when their tags agree."""
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode()).hexdigest()[:12]


def reference_path(results_dir: str | Path, model: str, baseline_variant: str, hardware_id: str,
                   settings: Mapping[str, Any]) -> Path:
    """Where a baseline's held-out reference lies: one per model, baseline, machine and settings."""
    tag = settings_tag(settings)
    return Path(results_dir) / "references" / f"{_safe(model)}--{_safe(baseline_variant)}--{hardware_id}--{tag}.npz"


def write_reference(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Arrays plus a JSON ``meta`` (who wrote it, with which settings), written atomically."""
    with atomic_file(path, binary=True) as f:
        np.savez_compressed(f, meta=np.asarray(json.dumps(dict(meta), default=str)), **arrays)
    return path


def write_distributions(results_dir: str | Path, run_id: str, arrays: Mapping[str, np.ndarray],
                        meta: Mapping[str, Any]) -> Path:
    """A point's own next-token distributions on the held-out windows, beside its record."""
    return write_reference(run_dir(results_dir, run_id) / "distributions.npz", arrays, meta)


def read_reference(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and meta of a reference, or None when absent or unreadable (then it is missing)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return arrays, json.loads(str(arrays.pop("meta")))


class RecordError(ValueError):
    """A file in a results directory that is not a readable record of this schema."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{path}: not readable JSON ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict) or "schema_version" not in data:
        raise RecordError(f"{path}: not a meekbench record (no schema_version)")
    return data


def _validated(model: type, data: dict[str, Any], path: Path):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise RecordError(f"{path}: invalid record at {where}: {first['msg']} ({e.error_count()} errors)") from e


def read_record(path: str | Path) -> RunRecord:
    path = Path(path)
    data = _read_json(path)
    if data["schema_version"] == 1:
        data = upgrade_v1(data)
    if data["schema_version"] == 2:
        data = upgrade_v2(data)
    if data["schema_version"] != SCHEMA_VERSION:
        raise RecordError(f"{path}: schema_version {data['schema_version']!r}; this meekbench reads "
                          f"versions 1 to {SCHEMA_VERSION} (re-run the point, or read it with the meekbench that wrote it)")
    return _validated(RunRecord, data, path)


@dataclass
class Skipped:
    path: Path
    reason: str


def iter_records(results_dirs: list[str | Path]) -> Iterator[RunRecord | Skipped]:
    """Every record file under the given directories, valid ones as RunRecord, the rest as Skipped."""
    for d in results_dirs:
        root = Path(d)
        if not root.exists():
            yield Skipped(root, "results directory does not exist")
            continue
        for path in sorted(root.glob(f"runs/*/{RECORD}")):
            try:
                yield read_record(path)
            except RecordError as e:
                yield Skipped(path, str(e))


def existing_ok(results_dir: str | Path, run_id: str) -> RunRecord | None:
    path = run_dir(results_dir, run_id) / RECORD
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except RecordError:
        return None  # unreadable: measure again and overwrite
    return record if record.status == "ok" else None


@dataclass
class Loaded:
    records: list[RunRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def load_records(dirs: list[str | Path]) -> Loaded:
    """Every valid record under ``dirs`` (a point copied into two directories counts once);
    files that are not valid records are logged and listed in ``skipped``."""
    loaded, seen = Loaded(), set()
    for item in iter_records(dirs):
        if isinstance(item, Skipped):
            log.warning("skipped %s: %s", item.path, item.reason)
            loaded.skipped.append(item)
        elif item.run_id in seen:
            log.info("duplicate %s ignored", item.run_id)
        else:
            seen.add(item.run_id)
            loaded.records.append(item)
    return loaded


def require_valid(dirs: list[str | Path], loaded: Loaded, serving_records: int) -> None:
    """Folders whose every record file is malformed are bad input, said before anything is written
    (BadInputFile: one line naming the first file and why); some valid records with a bad file among
    them are reported on, the bad file listed."""
    if loaded.skipped and not loaded.records and not serving_records:
        first = loaded.skipped[0]
        why = first.reason if str(first.path) in first.reason else f"{first.path}: {first.reason}"
        raise BadInputFile(f"{', '.join(map(str, dirs))}: no valid record, {len(loaded.skipped)} file(s) skipped; "
                           f"first {why}; valid: records `meekbench run` wrote "
                           "(docs/records.md)")


def serving_dir(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "serving" / run_id


def write_serving_record(results_dir: str | Path, record: ServingRecord) -> Path:
    return write_atomic(serving_dir(results_dir, record.run_id) / RECORD, record.model_dump_json(indent=1))


def read_serving_record(path: str | Path) -> ServingRecord:
    path = Path(path)
    data = _read_json(path)
    if data["schema_version"] != SERVING_SCHEMA_VERSION:
        raise RecordError(f"{path}: serving schema_version {data['schema_version']!r}; this meekbench reads "
                          f"version {SERVING_SCHEMA_VERSION}")
    return _validated(ServingRecord, data, path)


def existing_serving_ok(results_dir: str | Path, run_id: str) -> ServingRecord | None:
    path = serving_dir(results_dir, run_id) / RECORD
    try:
        record = read_serving_record(path) if path.exists() else None
    except RecordError:
        return None
    return record if record is not None and record.status == "ok" else None


def load_serving_records(dirs: list[str | Path]) -> tuple[list[ServingRecord], list[Skipped]]:
    """Every valid serving record under ``dirs`` (once each), and the files that are not."""
    records, skipped, seen = [], [], set()
    for d in dirs:
        for path in sorted(Path(d).glob(f"serving/*/{RECORD}")):
            try:
                record = read_serving_record(path)
            except RecordError as e:
                log.warning("skipped %s: %s", path, e)
                skipped.append(Skipped(path, str(e)))
                continue
            if record.run_id not in seen:
                seen.add(record.run_id)
                records.append(record)
    return records, skipped
