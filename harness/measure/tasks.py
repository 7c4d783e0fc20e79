"""Task accuracy through lm-eval, on the model already loaded for this point (no second load).

A transformers model (possibly quantised or distilled) is wrapped in ``HFLM(pretrained=model, ...)``;
any other engine is reduced to its logits for token ids (``EngineLM``: lm-eval's ``TemplateLM``
scoring one sequence at a time, tokenised by the same transformers tokenizer). Either is evaluated
with ``simple_evaluate``; the batch size is fixed per suite, because padding can change accuracy.
The per-sample logs are returned with the scores; the results store writes them.
"""
from __future__ import annotations

import contextlib
import difflib
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

from harness.blocks import TaskScore

log = logging.getLogger(__name__)

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


class TaskSuite(Protocol):
    """What an evaluation needs (harness.config.EvalConfig is one)."""
    tasks: Sequence[str]
    num_fewshot: Mapping[str, int]
    default_fewshot: int
    batch_size: int
    log_samples: bool
    include_path: str | None
    include_defaults: bool
    limit: float | None
    offline: bool
    bootstrap_iters: int
    missing_hint: str
    progress_bars: bool
    random_seed: int
    numpy_random_seed: int
    torch_random_seed: int
    fewshot_random_seed: int


@dataclass
class TaskResults:
    tasks: dict[str, TaskScore] = field(default_factory=dict)
    lm_eval_version: str | None = None
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task -> per-sample logs


@contextlib.contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Hub access off for the duration of the block, then exactly as before.

    Sets HF_HUB_OFFLINE / HF_DATASETS_OFFLINE and the flags that huggingface_hub and datasets
    read from them once, at import. Scoped because Hydra's basic launcher runs a whole sweep in
    one process: a setting left behind would make every later point offline, and a hub model
    there would fail to load.
    """
    if not enabled:
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    flags = [(datasets.config, "HF_HUB_OFFLINE"), (huggingface_hub.constants, "HF_HUB_OFFLINE")]
    saved_env = {k: os.environ.get(k) for k in _OFFLINE_VARS}
    saved_flags = [getattr(module, name) for module, name in flags]
    os.environ.update(dict.fromkeys(_OFFLINE_VARS, "1"))
    for module, name in flags:
        setattr(module, name, True)
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for (module, name), value in zip(flags, saved_flags):
            setattr(module, name, value)


def task_manager(suite: TaskSuite):
    from lm_eval.tasks import TaskManager

    include = suite.include_path
    if include and not Path(include).exists():
        include = None  # reported per task below, with the suite's hint
    return TaskManager(include_path=include, include_defaults=suite.include_defaults)


def check_tasks(tm, suite: TaskSuite) -> None:
    known = set(tm.all_tasks)
    for name in suite.tasks:
        if name in known:
            continue
        where = suite.include_path
        if where and not (Path(where) / f"{name}.yaml").exists():
            raise FileNotFoundError(f"lm-eval task {name!r} is not under eval.include_path={where}"
                                    + (f"; {suite.missing_hint}" if suite.missing_hint else ""))
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        raise ValueError(f"unknown lm-eval task {name!r}; close matches: {close or 'none'}")


def _metrics(raw: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in raw.items():
        if "," not in key:
            continue
        metric, filt = key.split(",", 1)
        name = metric if filt == "none" else f"{metric}[{filt}]"
        out[name] = float(value) if isinstance(value, (int, float)) else None  # "N/A" stderr -> None
    return out


def evaluate_tasks(model, tokenizer, suite: TaskSuite, offline: bool = False, logits=None,
                   max_length: int | None = None) -> TaskResults:
    """Score ``suite.tasks`` on the loaded model (a transformers model, or ``model=None`` and an engine's
    ``logits`` function with its ``max_length``); offline (hub access off) only during the call."""
    with hub_offline(suite.offline or offline):
        return _evaluate(model, tokenizer, suite, logits, max_length)


def engine_lm(logits, tokenizer, max_length: int):
    """lm-eval's LM over an engine's logits for token ids: loglikelihood (via TemplateLM's encoding of
    context and continuation, as HFLM does) and rolling loglikelihood (HFLM's disjoint windows)."""
    import torch
    from lm_eval import utils
    from lm_eval.api.model import TemplateLM

    class EngineLM(TemplateLM):
        backend = "causal"

        @property
        def eot_token_id(self) -> int:
            return tokenizer.eos_token_id

        @property
        def prefix_token_id(self) -> int:  # as HFLM: BOS where the tokenizer has one
            return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

        @property
        def max_length(self) -> int:
            return max_length

        def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
            return tokenizer.encode(string, add_special_tokens=bool(add_special_tokens))

        @torch.inference_mode()
        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
            out = []
            for _, context, continuation in requests:
                whole = (context + continuation)[-(max_length + 1):]  # the context's left end drops first
                logp = logits(torch.tensor([whole[:-1]]))[0].float().log_softmax(-1)[-len(continuation):]
                target = torch.tensor(continuation, device=logp.device)
                out.append((float(logp.gather(-1, target[:, None]).sum()), bool((logp.argmax(-1) == target).all())))
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
            totals = []
            for (string,) in (r.args for r in requests):
                windows = map(utils.make_disjoint_window, utils.get_rolling_token_windows(
                    token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                    max_seq_len=max_length, context_len=1))
                totals.append(sum(ll for ll, _ in self._loglikelihood_tokens([(None, c, x) for c, x in windows])))
            return totals

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            raise NotImplementedError("generation tasks (generate_until) run on the transformers engine only here; "
                                      "this engine scores loglikelihood tasks")

    return EngineLM()


@contextlib.contextmanager
def _lm_eval_silenced(quiet: bool) -> Iterator[None]:
    """lm-eval draws a bar per task while it builds requests and per metric while it bootstraps a
    standard error, and prints "bootstrapping for stddev" to stdout; with eval.progress_bars=false
    (the default) none of it reaches the terminal. Its logging and exceptions are untouched."""
    if not quiet:
        yield
        return
    import functools
    import io
    from unittest import mock

    import tqdm as tqdm_package
    from lm_eval.api import model as lm_model, task as lm_task

    silent = functools.partial(tqdm_package.tqdm, disable=True)
    with mock.patch.object(tqdm_package, "tqdm", silent), mock.patch.object(lm_task, "tqdm", silent), \
            mock.patch.object(lm_model, "tqdm", silent), contextlib.redirect_stdout(io.StringIO()):
        yield


def _evaluate(model, tokenizer, suite: TaskSuite, logits=None, max_length: int | None = None) -> TaskResults:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    tm = task_manager(suite)
    check_tasks(tm, suite)
    quiet = not suite.progress_bars

    class _HFLM(HFLM):  # lm-eval draws a bar per request batch; simple_evaluate offers no switch
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm or quiet)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm or quiet)

        def generate_until(self, requests, disable_tqdm: bool = False):
            return super().generate_until(requests, disable_tqdm=disable_tqdm or quiet)

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
            # the rolling path calls this with disable_tqdm=False hard-coded (lm-eval 0.4.x)
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm or quiet, **kwargs)

    lm = _HFLM(pretrained=model, tokenizer=tokenizer, batch_size=suite.batch_size) if model is not None \
        else engine_lm(logits, tokenizer, max_length)
    by_shot: dict[int, list[str]] = {}
    for t in suite.tasks:
        by_shot.setdefault(int(suite.num_fewshot.get(t, suite.default_fewshot)), []).append(t)
    out = TaskResults(lm_eval_version=metadata.version("lm_eval"))
    for n_shot, names in sorted(by_shot.items()):
        with _lm_eval_silenced(quiet):
            res = simple_evaluate(model=lm, tasks=names, num_fewshot=n_shot, task_manager=tm,
                                  log_samples=suite.log_samples, limit=suite.limit,
                                  bootstrap_iters=suite.bootstrap_iters, random_seed=suite.random_seed,
                                  numpy_random_seed=suite.numpy_random_seed,
                                  torch_random_seed=suite.torch_random_seed,
                                  fewshot_random_seed=suite.fewshot_random_seed)
        for name in names:
            out.tasks[name] = TaskScore(
                metrics=_metrics(res["results"].get(name, {})),
                n_samples=res.get("n-samples", {}).get(name, {}).get("effective"),
                n_shot=res.get("n-shot", {}).get(name, n_shot),
                version=str(res.get("versions", {}).get(name)))
            if suite.log_samples and name in res.get("samples", {}):
                out.samples[name] = list(res["samples"][name])
    return out
