"""``meekbench build-grid``: an IsoFLOP grid of tiny Llama models, built like the family.

Every run trains one shape (from the config's size ladder) for exactly the tokens its compute
budget buys, with the family's tokenizer, window order rule (seeded random windows), recipe and
the one training loop (``harness.tiny.train``), each with its own warm-up + cosine ending at its own
last step. Peak learning rate per size from ``lr_rule`` (written in the config). The plan is
checked against the grid's stated rules (``rules``: steps of the fixed batch, aspect ratio, head
size) before anything trains.

A lab grid (conf/grid/lab-gpu.yaml) sets its own tokenizer, its own text from a data set (held
out from the same distribution), the device and bf16 autocast; the CPU grids use the family's.

FLOPs per run, counted exactly for these models (Kaplan et al. 2020, eq. 2.1, times 3 for
forward + backward): ``C = D * (6 * N_matmul + 6 * n_layers * seq_len * d_model)``, where
``N_matmul`` = non-embedding parameters + the output projection (vocabulary x d_model: tied to
the embedding here, but its matmul is paid every token; for these tiny models it is most of the
compute) and the second term is attention over the context. N_matmul equals the total parameter
count when embeddings are tied, so C is 6ND with N = total parameters, plus attention.

Data honesty: the family's training text plus docstrings of installed packages
(``extra_packages``), minus any document the family holds out; the largest run's epochs over
it must stay within ``max_epochs`` (else the build refuses before training). Each run is cached
by its recipe hash (skipped when its card matches) and resumes from its checkpoint when killed.
Writes ``<out_dir>/grid.json`` (every run: shape, budget, exact FLOPs, parameters, tokens,
epochs, held-out loss) next to the runs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from harness.models.card import BuildInfo, ModelCard, write_card
from harness.config import GridConfig, TinyBuildConfig, TinyModelSpec
from harness.measure.quality import heldout_loss, hf_logits, truncate_utf8
from harness.models.params import ParamCounts, count_params
from harness.io import write_atomic
from harness.tiny.build import DOC_SEPARATOR, FORMAT_VERSION, _built_card, encode_documents, make_model
from harness.tiny.corpus import is_heldout, dataset_corpus, package_docstrings
from harness.tiny.train import TrainRecipe, train_lm

log = logging.getLogger(__name__)


def flops_per_token(non_embedding: int, vocab: int, d_model: int, n_layers: int, seq_len: int) -> float:
    """Training FLOPs per token (see the module docstring)."""
    return 6 * (non_embedding + vocab * d_model) + 6 * n_layers * seq_len * d_model


def learning_rate(cfg: GridConfig, total_params: int) -> float:
    rule = cfg.lr_rule
    return rule.ref * (total_params / rule.ref_params) ** -rule.exponent


@dataclass
class GridRun:
    name: str  # <shape>-c<budget>-s<seed>
    shape: str
    budget_flops: float
    flops: float  # exact, for the tokens actually trained (whole steps)
    params: int  # total (embedding tied)
    non_embedding_params: int
    tokens: int
    epochs: float  # tokens / unique training tokens
    seed: int
    peak_lr: float
    lr_multiplier: float  # over the lr rule's: 1 for the grid's runs, others for the lr check only
    steps: int
    num_layers: int
    hidden_size: int
    rule_breaks: list[str]  # the grid's rules (GridConfig.rules) this run breaks; empty when none
    heldout_loss_nats: float  # on the family's held-out split (a lab grid: on its own data set's)
    heldout_bits_per_byte: float
    heldout_in_distribution_loss_nats: float | None  # on documents held out from this grid's own training mixture
    wall_time_s: float
    reused: bool


def _family_cfg(cfg: GridConfig, vocab: int, seed: int) -> TinyBuildConfig:
    """The family's architecture settings, for make_model (its init rule), with the replicate's seed:
    replicates differ in their initialisation as well as in their data order."""
    return TinyBuildConfig(vocab_size=vocab, seq_len=cfg.seq_len, seed=seed)


@dataclass(frozen=True)
class GridText:
    train: list[str]
    heldout: str  # the text every run's held-out loss is read on
    description: str
    sha256: str  # of the training documents and the held-out text
    in_distribution: str | None = None  # held out from the training mixture, where heldout is not


def _family_text(cfg: GridConfig, family_dir: Path) -> GridText:
    """Training documents: the family's train split + extra packages' docstrings, minus the family's
    held-out documents and 1 in extra_heldout_every of the extras (by hash, the family's own rule).
    The main held-out text is the family's (so the grid's losses are on the family's scale: the
    variants are read on the grid's law); the family's and the extras' held-out documents together
    are held out from the training mixture itself, for the in-distribution loss."""
    train_path, heldout_path = family_dir / "data" / "train.txt", family_dir / "data" / "heldout.txt"
    if not train_path.exists():
        raise FileNotFoundError(f"{train_path} does not exist: run `meekbench build-tiny` first (the grid uses "
                                "the family's tokenizer and text split unless grid text and tokenizer are given)")
    family = train_path.read_text(encoding="utf-8").split(DOC_SEPARATOR)
    heldout_text = heldout_path.read_text(encoding="utf-8")
    heldout = set(heldout_text.split(DOC_SEPARATOR))
    extra, described = package_docstrings(list(cfg.extra_packages), cfg.extra_max_chars) if cfg.extra_packages \
        else ([], "")
    extra_heldout = [d for d in extra if d not in heldout and is_heldout(d, cfg.extra_heldout_every)]
    seen, docs = heldout | set(extra_heldout), []
    for d in family + extra:  # the held-out documents stay out of training; duplicates count once
        if d not in seen:
            seen.add(d)
            docs.append(d)
    description = "the tiny family's training split" + (
        f" + {described}, 1 in {cfg.extra_heldout_every} of those held out" if described else "")
    digest = hashlib.sha256("\x00".join(docs).encode("utf-8")).hexdigest()
    mixture = truncate_utf8(DOC_SEPARATOR.join([heldout_text, *dict.fromkeys(extra_heldout)]),
                            cfg.in_distribution_max_bytes) if extra_heldout else None
    return GridText(docs, heldout_text, description, digest, mixture)


def _grid_text(cfg: GridConfig, family_dir: Path) -> GridText:
    """The grid's text: its own data set's (``text``: held out from the same distribution), or the
    family's (+ extra packages)."""
    if cfg.text is None:
        return _family_text(cfg, family_dir)
    t = cfg.text
    corpus = dataset_corpus(t.path, t.name, t.split, t.data_files, t.text_field, t.max_docs, t.heldout_every)
    heldout = truncate_utf8(DOC_SEPARATOR.join(corpus.heldout), t.heldout_max_chars)
    if not heldout:
        raise ValueError(f"text: no document of {len(corpus.train)} was held out (1 in text.heldout_every="
                         f"{t.heldout_every}); raise text.max_docs or lower text.heldout_every")
    return GridText(corpus.train, heldout, corpus.description + f"; held-out text capped at {t.heldout_max_chars} "
                    "chars", hashlib.sha256(f"{corpus.sha256}:{t.heldout_max_chars}".encode()).hexdigest())


def _tokenizer(cfg: GridConfig, family_dir: Path):
    """The grid's tokenizer (a path or hub id) or the family's; and the name its runs' hash records."""
    if cfg.tokenizer is None:
        return PreTrainedTokenizerFast.from_pretrained(family_dir / "tokenizer"), None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.tokenizer)
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer={cfg.tokenizer!r} has no EOS token to separate documents with")
    return tok, f"{cfg.tokenizer} ({len(tok)} tokens)"


def _plan(cfg: GridConfig) -> list[tuple[int, TinyModelSpec, float, int, float]]:
    """(budget index, shape, budget FLOPs, seed, lr multiplier) of every run, in build order: the
    grid's runs, then the lr sweep's."""
    shapes = {s.name: s for s in cfg.shapes}
    order = sorted(range(len(cfg.budgets)), key=lambda i: cfg.budgets[i].flops)
    runs = []
    for i in order:
        if cfg.only_budgets is not None and i not in cfg.only_budgets:
            continue
        budget = cfg.budgets[i]
        unknown = [s for s in budget.shapes if s not in shapes]
        if unknown:
            raise ValueError(f"budgets[{i}].shapes names {unknown}, not in shapes ({', '.join(shapes)})")
        seeds = list(cfg.seeds_at_smallest) if i == order[0] else [cfg.seeds_at_smallest[0]]
        runs += [(i, shapes[name], budget.flops, seed, 1.0) for name in budget.shapes for seed in seeds]
    sweep = cfg.lr_sweep
    if sweep is not None and (cfg.only_budgets is None or sweep.budget in cfg.only_budgets):
        if not 0 <= sweep.budget < len(cfg.budgets) or sweep.shape not in cfg.budgets[sweep.budget].shapes:
            raise ValueError(f"lr_sweep: budget {sweep.budget}, shape {sweep.shape!r}: need a budget index below "
                             f"{len(cfg.budgets)} and one of that budget's shapes")
        runs += [(sweep.budget, shapes[sweep.shape], cfg.budgets[sweep.budget].flops, cfg.seeds_at_smallest[0], m)
                 for m in sweep.multipliers if m != 1.0]
    return runs


@dataclass
class PlannedRun:
    spec: TinyModelSpec
    budget: float
    seed: int
    lr_multiplier: float
    counts: ParamCounts
    per_token: float  # training FLOPs per token
    steps: int
    rule_breaks: list[str]


def plan_runs(cfg: GridConfig, vocab: int) -> list[PlannedRun]:
    """Every run's parameters (counted on the meta device: no memory, so a lab grid plans on any
    machine), its steps of the fixed batch, and the rules it breaks."""
    out = []
    for _, spec, budget, seed, lr_mult in _plan(cfg):
        with torch.device("meta"):
            counts = count_params(make_model(spec, _family_cfg(cfg, vocab, seed)))
        per_token = flops_per_token(counts.non_embedding, vocab, spec.hidden_size, spec.num_layers, cfg.seq_len)
        steps = max(1, round(budget / per_token / (cfg.batch_size * cfg.seq_len)))
        out.append(PlannedRun(spec, budget, seed, lr_mult, counts, per_token, steps,
                              rule_breaks(cfg, spec, steps)))
    return out


def check_rules(cfg: GridConfig, planned: list[PlannedRun]) -> None:
    """Refuse a plan that breaks the grid's rules, naming every break, before anything trains (or,
    with rules.enforce=false, log them: grid.json keeps them and the law warns)."""
    broken = sorted({f"{p.spec.name} at {p.budget:.3g} FLOPs: {'; '.join(p.rule_breaks)}" for p in planned
                     if p.rule_breaks})
    if broken and cfg.rules.enforce:
        raise ValueError(f"grid {cfg.name!r}: {len(broken)} planned run(s) break the grid's rules, nothing trained:\n  "
                         + "\n  ".join(broken) + "\nchange the shapes or budgets, or set rules.enforce=false to build "
                         "anyway (the law will carry a warning)")
    for line in broken:
        log.warning("rule broken (rules.enforce=false): %s", line)


def check_epochs(cfg: GridConfig, planned: list[PlannedRun], train_tokens: int) -> float:
    """The most times any planned run would see its text; refused above max_epochs (repeated data
    is worth less than fresh, Muennighoff et al. 2023), before anything trains."""
    worst = max(p.steps * cfg.batch_size * cfg.seq_len for p in planned) / train_tokens
    if worst > cfg.max_epochs:
        raise ValueError(f"the largest run would see its text {worst:.2f} times (max_epochs={cfg.max_epochs}): "
                         f"{train_tokens} training tokens; add text ("
                         + ("text.max_docs" if cfg.text else "extra_packages, extra_max_chars") + ") or lower the budgets")
    return worst


def rule_breaks(cfg: GridConfig, spec: TinyModelSpec, steps: int) -> list[str]:
    """The grid's stated rules (GridConfig.rules) that one planned run breaks, in words."""
    rules, out = cfg.rules, []
    if steps < rules.min_steps:
        out.append(f"{steps} steps < rules.min_steps={rules.min_steps} (batch rule: a fixed batch of "
                   f"{cfg.batch_size} x {cfg.seq_len} tokens)")
    aspect = spec.hidden_size / spec.num_layers
    low, high = rules.aspect_ratio
    if not low <= aspect <= high:
        out.append(f"aspect ratio hidden_size / num_layers = {aspect:.3g} outside rules.aspect_ratio=[{low:g}, {high:g}] "
                   "(depth rule)")
    if spec.hidden_size // spec.num_heads < rules.min_head_dim:
        out.append(f"head dimension {spec.hidden_size // spec.num_heads} < rules.min_head_dim={rules.min_head_dim}")
    return out


def _recipe_hash(cfg: GridConfig, spec: TinyModelSpec, recipe: TrainRecipe, text_sha: str,
                 tokenizer: str | None) -> str:
    blob = {"spec": asdict(spec), "recipe": asdict(recipe), "text": text_sha, "format": FORMAT_VERSION,
            "eval": [cfg.seq_len, cfg.eval_batch_size], "init_seed": recipe.seed}
    # what the CPU grids never set joins the hash only when set, so their cached runs stay valid
    blob |= {k: v for k, v in (("tokenizer", tokenizer), ("precision", cfg.precision),
                               ("in_distribution_max_bytes", cfg.in_distribution_max_bytes)) if v not in (None, "fp32")}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=list).encode()).hexdigest()[:16]


@dataclass
class _GridData:
    """What every run of the grid trains and is scored on."""
    tokenizer: Any
    tokenizer_name: str | None
    text: Any  # the grid's text: train documents, held-out text(s), description, sha256
    ids: Any  # the training documents' token ids
    vocab: int


def _train_run(cfg: GridConfig, data: _GridData, p: Any, name: str, run_dir: Path, recipe: TrainRecipe,
               build_hash: str) -> tuple[float, float, float | None, float]:
    """Train one run from its seeded init, save it with its card; its held-out loss, bits per byte,
    in-distribution loss and wall time."""
    spec, counts, tokens, text, vocab = p.spec, p.counts, recipe.tokens, data.text, data.vocab
    t0 = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    model = make_model(spec, _family_cfg(cfg, vocab, p.seed)).to(cfg.device)  # the seeded init, as counted
    train_lm(model, data.ids, recipe, name, checkpoint=run_dir / "resume.ckpt", checkpoint_every=cfg.checkpoint_every,
             bf16_autocast=cfg.precision == "bf16")

    def loss_on(held: str):
        return heldout_loss(hf_logits(model), data.tokenizer, held, context_length=cfg.seq_len,
                            stride=cfg.seq_len // 2, max_bytes=None, batch_size=cfg.eval_batch_size)

    q = loss_on(text.heldout)
    in_dist = loss_on(text.in_distribution).heldout_loss_nats if text.in_distribution else None
    wall = time.perf_counter() - t0
    model.save_pretrained(run_dir)
    data.tokenizer.save_pretrained(run_dir)
    write_card(run_dir, ModelCard(
        name=name, family=f"grid-{cfg.name}", params=counts.total, non_embedding_params=counts.non_embedding,
        train_tokens=tokens, train_flops=p.per_token * tokens, wall_time_s=round(wall, 2),
        build=BuildInfo(architecture="LlamaForCausalLM", spec=asdict(spec),
                        train_flops_non_embedding=6 * counts.non_embedding * tokens,
                        heldout_loss_nats=q.heldout_loss_nats, heldout_bits_per_byte=q.bits_per_byte,
                        corpus=text.description, corpus_sha256=text.sha256, vocab_size=vocab,
                        seq_len=cfg.seq_len, seed=p.seed, torch_threads=torch.get_num_threads(),
                        build_hash=build_hash, heldout_in_distribution_loss_nats=in_dist)))
    return q.heldout_loss_nats, q.bits_per_byte, in_dist, wall


def _grid_run(cfg: GridConfig, data: _GridData, p: Any, out: Path, n: int, total: int) -> GridRun:
    """One planned run: reused where its card's build hash matches, else trained now."""
    spec, budget, seed, lr_mult, counts, per_token = p.spec, p.budget, p.seed, p.lr_multiplier, p.counts, p.per_token
    lr = learning_rate(cfg, counts.total) * lr_mult
    recipe = TrainRecipe.from_settings(cfg, p.steps, lr, seed)
    name = f"{spec.name}-c{budget:.1e}-s{seed}".replace("+", "") + (f"-lr{lr_mult:g}x" if lr_mult != 1.0 else "")
    run_dir = out / name
    build_hash = _recipe_hash(cfg, spec, recipe, data.text.sha256, data.tokenizer_name)
    tokens = recipe.tokens
    base = dict(name=name, shape=spec.name, budget_flops=budget, flops=per_token * tokens, params=counts.total,
                non_embedding_params=counts.non_embedding, tokens=tokens, epochs=tokens / len(data.ids), seed=seed,
                peak_lr=lr, lr_multiplier=lr_mult, steps=p.steps, num_layers=spec.num_layers,
                hidden_size=spec.hidden_size, rule_breaks=p.rule_breaks)
    if not cfg.force and (card := _built_card(run_dir, build_hash)):
        log.info("[%d/%d] %s: up to date, reused", n, total, name)
        return GridRun(**base, heldout_loss_nats=card.build.heldout_loss_nats,
                       heldout_bits_per_byte=card.build.heldout_bits_per_byte,
                       heldout_in_distribution_loss_nats=card.build.heldout_in_distribution_loss_nats,
                       wall_time_s=card.wall_time_s, reused=True)
    log.info("[%d/%d] %s: %d steps, %.3g FLOPs, lr %.2e", n, total, name, p.steps, per_token * tokens, lr)
    loss, bpb, in_dist, wall = _train_run(cfg, data, p, name, run_dir, recipe, build_hash)
    log.info("%s: held-out loss %.4f nats/token (in-distribution: %s), %.1f s", name, loss,
             f"{in_dist:.4f}" if in_dist is not None else "not read", wall)
    return GridRun(**base, heldout_loss_nats=loss, heldout_bits_per_byte=bpb, heldout_in_distribution_loss_nats=in_dist,
                   wall_time_s=round(wall, 2), reused=False)


def build_grid(cfg: GridConfig) -> list[GridRun]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_all = time.perf_counter()
    family_dir, out = Path(cfg.family_dir), Path(cfg.out_dir)
    tokenizer, tokenizer_name = _tokenizer(cfg, family_dir)
    text = _grid_text(cfg, family_dir)
    if text.in_distribution:
        log.info("in-distribution held-out text: %d chars (the family's held-out split + the extras' held out)",
                 len(text.in_distribution))
    ids = encode_documents(tokenizer, text.train)
    data = _GridData(tokenizer, tokenizer_name, text, ids, len(tokenizer))
    log.info("grid text: %s; %d documents, %d tokens", text.description, len(text.train), len(ids))

    planned = plan_runs(cfg, data.vocab)
    check_rules(cfg, planned)
    check_epochs(cfg, planned, len(ids))
    runs = [_grid_run(cfg, data, p, out, n, len(planned)) for n, p in enumerate(planned, 1)]

    summary = {"grid": cfg.name, "text": text.description, "text_sha256": text.sha256, "train_tokens": len(ids),
               "flops_rule": "D * (6 * (non-embedding + vocab * d_model) + 6 * n_layers * seq_len * d_model)",
               "rules": asdict(cfg.rules), "device": cfg.device, "precision": cfg.precision,
               "tokenizer": tokenizer_name or "the tiny family's", "vocab_size": data.vocab,
               "heldout": "the tiny family's held-out split (the family's loss scale); heldout_in_distribution: "
                          "that split + the extra packages' held-out documents (the training mixture)"
                          if cfg.text is None else
               "held out from the grid's own data set (the training distribution)",
               "in_distribution_max_bytes": cfg.in_distribution_max_bytes,
               "built_in_s": round(time.perf_counter() - t_all, 1), "runs": [asdict(r) for r in runs]}
    write_atomic(out / "grid.json", json.dumps(summary, indent=1))
    log.info("grid %s: %d runs in %.1f s -> %s", cfg.name, len(runs), summary["built_in_s"], out / "grid.json")
    return runs
