"""``meekbench <command> [hydra overrides]``: each command is a Hydra app composing conf/."""
from __future__ import annotations

import difflib
import logging
import os
import sys
import warnings
from typing import Callable


def _quiet_libraries() -> None:
    """Keep library chatter out of the terminal (MEEKBENCH_LIBRARY_LOGS=1 lets it through):
    torchao announces CUDA kernels it cannot load on CPU machines and, through torch's pytree,
    deprecations at every import; transformers draws a progress bar for every weights load,
    datasets one per split it prepares; lm-eval logs each task's set-up (eval.progress_bars
    governs its per-request bars); bitsandbytes warns that its optional CPU kernels are absent."""
    if os.environ.get("MEEKBENCH_LIBRARY_LOGS") == "1":
        return
    for name in ("torchao", "torch.utils._pytree", "lm_eval", "bitsandbytes"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # torch-dynamic-int8 measures torch's own dynamic quantisation, whose tensors torch 2.13 announces as
    # deprecated on every quantised layer
    warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


_quiet_libraries()

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from harness.config import CONF_DIR, ConfigValueError, refuse_unknown_keys  # noqa: E402  (registers the schemas)
from harness.io import BadInputFile  # noqa: E402


def _build_tiny(cfg: DictConfig) -> None:
    from harness.tiny.build import build_family

    build_family(OmegaConf.to_object(cfg))


def _build_grid(cfg: DictConfig) -> None:
    from harness.tiny.grid import build_grid

    build_grid(OmegaConf.to_object(cfg))


def _fit_law(cfg: DictConfig) -> None:
    from harness.projector.fit_law import fit_law

    print(fit_law(OmegaConf.to_object(cfg)))


def _build_tasks(cfg: DictConfig) -> None:
    from harness.tiny.tasks import write_tasks

    counts = write_tasks(cfg.heldout_path, cfg.out_dir, cfg.seed)
    print(f"ci tasks written to {cfg.out_dir}: {counts}")


# set once a command's task function starts: a Hydra exit before that is a config Hydra could not compose
_STARTED: list[bool] = []

# points of this invocation that ran in this process (a run, or a sweep on Hydra's default launcher) and
# failed: every point still runs, then the command exits 1 listing them (`unsupported` is data, not a failure)
_FAILED: list[str] = []


def _refuse_missing_device(cfg: DictConfig) -> None:
    """A single run on a device this machine lacks is a bad invocation (exit 2, before any load);
    in a sweep it is each point's `unsupported` record, so the other points still run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from harness.models import DeviceUnavailableError, resolve_device

    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return
    try:
        resolve_device(cfg.hardware.device)
    except DeviceUnavailableError as e:
        print(f"meekbench: bad config: {e}", file=sys.stderr)
        sys.exit(2)


def _run(cfg: DictConfig) -> None:
    from harness.run import run_point
    from harness.scenarios.serving import TargetAmbiguous, TargetUnreachable

    _refuse_missing_device(cfg)
    try:
        result = run_point(cfg)
    except TargetAmbiguous as e:  # which model to ask for: a bad config
        print(f"meekbench: bad config: {e}", file=sys.stderr)
        sys.exit(2)
    except TargetUnreachable as e:  # a bad URL is a bad invocation, found before any traffic
        print(f"meekbench: {e}", file=sys.stderr)
        sys.exit(1)
    records = result if isinstance(result, list) else [result]
    _FAILED.extend(f"{r.run_id}: {r.status}: {r.error}" for r in records if r.status in ("failed", "oom", "not_built"))


def _summary(cfg: DictConfig) -> None:
    from pathlib import Path

    from harness.report.summary import print_summary

    root = Path(cfg.results_dir)
    if not (root / "runs").is_dir() and not (root / "serving").is_dir():
        raise FileNotFoundError(f"results_dir={root} holds no records (no runs/ or serving/ folder); valid: a "
                                "directory `meekbench run` wrote into")
    print_summary(OmegaConf.to_object(cfg))


def _report(cfg: DictConfig) -> None:
    from harness.report import write_report
    from harness.results.comparison import Judging

    path = write_report(list(cfg.results_dirs), cfg.out_dir, Judging.from_config(cfg.baseline_variant, cfg.judge))
    beside = sorted(p.name for p in path.parent.iterdir() if p.suffix in (".html", ".parquet", ".csv"))
    plots = len(list(path.parent.glob("*.png")))
    print(f"report written to {path} ({', '.join(beside)}{f' and {plots} PNG plots' if plots else ''} beside it)")
    verdict = path.parent / "verdict.md"
    if verdict.exists() and verdict.read_text().strip():
        print(f"What to look at first (from the records; the scorecards in {path.parent / 'report.html'}):",
              verdict.read_text().strip(), sep="\n")


def _positional_dirs_to_override(argv: list[str]) -> list[str]:
    """`meekbench report A B` -> `results_dirs=[A,B]` (Hydra itself takes only key=value)."""
    dirs = [a for a in argv if "=" not in a and not a.startswith("-")]
    rest = [a for a in argv if a not in dirs]
    return rest + ([f"results_dirs=[{','.join(dirs)}]"] if dirs else [])


def _refuse_missing_law(cfg: DictConfig) -> None:
    """A law file named on the command line must exist (a default path that does not is the paper's
    law, said in the projection); the laws there are listed."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    path = Path(cfg.projector.law.measured_path)
    named = any(o.split("=")[0].lstrip("+~") == "projector.law.measured_path" for o in HydraConfig.get().overrides.task)
    if named and not path.is_file():
        found = sorted(str(p) for p in Path(cfg.results_dir).glob("scaling/*/law.json"))
        raise FileNotFoundError(f"projector.law.measured_path={path} {'is a folder' if path.is_dir() else 'does not exist'}"
                                f"; valid: a law.json that `meekbench fit-law` wrote (under {cfg.results_dir}: "
                                f"{', '.join(found) or 'none'})")


def _project(cfg: DictConfig) -> None:
    from rich.console import Console

    from harness.projector.systematic import ProjectionRefused
    from harness.projector.project import write_projection

    _refuse_missing_law(cfg)
    try:
        out = write_projection(OmegaConf.to_object(cfg))
    except ProjectionRefused as e:  # nothing written: a refusal is not a projection
        print(f"meekbench: projection refused: {e}", file=sys.stderr)
        sys.exit(1)
    data = (out / "projection.md").read_text().split("## Inputs")[0]
    Console(width=120).print(data.strip())
    print(f"projection written to {out}/ (projection.json, projection.md, *.png)")


# command -> (primary config name under conf/, task function, one-line help)
COMMANDS: dict[str, tuple[str, Callable[[DictConfig], None], str]] = {
    "build-tiny": ("build_tiny", _build_tiny, "train the tiny CI model family into models/tiny/"),
    "build-tasks": ("build_tasks", _build_tasks, "generate the offline `ci` lm-eval suite from held-out text"),
    "build-grid": ("build_grid", _build_grid, "train the IsoFLOP grid of tiny models into models/grid/<name>/"),
    "fit-law": ("fit_law", _fit_law, "fit the compute-optimal law to the grid (3 approaches) -> results/scaling/"),
    "run": ("run", _run, "measure one point (or a sweep with -m) and write its record"),
    "summary": ("summary", _summary, "print a table of the records under results_dir"),
    "report": ("report", _report, "tables, plots and a Markdown report from results directories"),
    "project": ("project", _project, "scaling-gap projection (projector="
                + "|".join(sorted(p.stem for p in (CONF_DIR / "projector").glob("*.yaml"))) + ")"),
}


def _checked(task: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """Instantiate the composed config (its schemas' __post_init__ checks every value) before the
    command runs: a bad value exits with status 2 naming key, value and what is valid, before any
    model loads. In a sweep, each job checks its own point."""
    def checked(cfg: DictConfig) -> None:  # unknown keys too, even added with +key=value
        _STARTED.append(True)
        try:
            refuse_unknown_keys(OmegaConf.to_object(cfg))
        except ConfigValueError as e:
            print(f"meekbench: bad config: {e}", file=sys.stderr)
            sys.exit(2)
        try:
            task(cfg)
        except (FileNotFoundError, NotADirectoryError, FileExistsError, BadInputFile) as e:  # a bad path or
            print(f"meekbench: {e}", file=sys.stderr)  # file: one line, no traceback
            sys.exit(2)
        except ConfigValueError as e:  # a value only the task could check (a name against what is built)
            print(f"meekbench: bad config: {e}", file=sys.stderr)
            sys.exit(2)

    checked.__name__ = task.__name__
    return checked


def _usage() -> str:
    lines = ["usage: meekbench <command> [hydra overrides...]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Overrides are Hydra's: key=value, -m for a sweep, --cfg job to print the config."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    command = sys.argv.pop(1)
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        print(f"meekbench: unknown command {command!r}{hint}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    config_name, task, _ = COMMANDS[command]
    if command == "report":
        sys.argv[1:] = _positional_dirs_to_override(sys.argv[1:])
    sys.argv[0] = f"meekbench-{command}"
    app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(_checked(task))
    try:
        app()
    except SystemExit as e:  # Hydra printed why it could not compose (a mistyped key, a string for a number)
        if e.code not in (0, None) and not _STARTED:
            print(f"meekbench: bad config (Hydra's message above); `meekbench {command} --cfg job` prints every key "
                  "and its value", file=sys.stderr)
            sys.exit(2)
        raise
    if _FAILED:
        print(f"meekbench: {len(_FAILED)} point(s) failed (their records say why; the others are recorded):",
              *(f"  {line}" for line in _FAILED), sep="\n", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
