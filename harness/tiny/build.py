"""Build the tiny model family: one byte-level BPE tokenizer, N Llama models, same data and seed.

Layout written under ``out_dir`` (default models/tiny/):
    tokenizer/                 the shared tokenizer (also copied into each model directory)
    data/train.txt, heldout.txt  the split text (documents separated by blank lines)
    <name>/                    save_pretrained (safetensors) + tokenizer + card.json
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from harness.models.card import BuildInfo, CardError, ModelCard, read_card, write_card
from harness.config import TinyBuildConfig, TinyModelSpec
from harness.measure.quality import heldout_loss, hf_logits
from harness.models.params import count_params
from harness.tiny.corpus import Corpus, load_corpus
from harness.tiny.train import TrainRecipe, steps_for, train_lm

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"
DOC_SEPARATOR = "\n\n"
FORMAT_VERSION = 4  # bump when the builder's output changes for the same config (4: the shared loop, harness/tiny/train.py)


def train_tokenizer(corpus: Corpus, vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus.train, trainer=trainer)  # held-out text never shapes the vocabulary
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=EOS, unk_token=None,
        model_max_length=1_000_000_000,  # documents are tokenised whole; windows are the evaluator's job
    )


def encode_documents(tokenizer: PreTrainedTokenizerFast, docs: list[str], chunk: int = 1000) -> torch.Tensor:
    """Every document's ids followed by EOS, as one tensor; built in chunks of numpy arrays, so a
    lab grid's billion tokens never sit in a Python list."""
    parts = []
    for i in range(0, len(docs), chunk):
        for enc in tokenizer(docs[i : i + chunk], add_special_tokens=False, verbose=False)["input_ids"]:
            parts.append(np.asarray(enc + [tokenizer.eos_token_id], dtype=np.int64))
    return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0, dtype=torch.long)


def make_model(spec: TinyModelSpec, cfg: TinyBuildConfig) -> LlamaForCausalLM:
    if cfg.architecture != "llama":
        raise ValueError(f"architecture={cfg.architecture!r}: the tiny family supports 'llama'")
    if spec.hidden_size % spec.num_heads:
        raise ValueError(f"{spec.name}: hidden_size {spec.hidden_size} not divisible by num_heads {spec.num_heads}")
    config = LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=cfg.seq_len,  # the context it was trained on: evaluators must not go past it
        tie_word_embeddings=True,
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def recipe_for(cfg: TinyBuildConfig, tokens: int, peak_lr: float, seed: int | None = None) -> TrainRecipe:
    """The family's training recipe for a run of ``tokens`` tokens (the grid uses it too)."""
    return TrainRecipe.from_settings(cfg, steps_for(tokens, cfg.batch_size, cfg.seq_len), peak_lr,
                                     cfg.seed if seed is None else seed)


def _build_hash(cfg: TinyBuildConfig, spec: TinyModelSpec, corpus_sha: str) -> str:
    keys = ("architecture", "vocab_size", "max_chars", "heldout_every", "seq_len", "batch_size",
            "train_tokens", "lr", "warmup_fraction", "min_lr_fraction", "weight_decay", "adam_betas", "grad_clip",
            "seed")
    recipe = {k: getattr(cfg, k) for k in keys} | {"spec": asdict(spec), "corpus": corpus_sha,
                                                   "format": FORMAT_VERSION}
    blob = json.dumps(recipe, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _built_card(model_dir: Path, build_hash: str) -> ModelCard | None:
    """The card of a model built by this recipe, or None (absent, other recipe, older format)."""
    try:
        card = read_card(model_dir)
    except CardError:
        return None
    return card if card and card.build and card.build.build_hash == build_hash else None


@dataclass
class BuiltModel:
    name: str
    non_embedding_params: int
    heldout_loss_nats: float
    wall_time_s: float
    reused: bool


def _family_tokenizer(cfg: TinyBuildConfig, corpus: Any, out: Path) -> tuple[Any, str]:
    """The family's tokenizer, trained on the corpus once (reused while corpus and vocabulary size hold)."""
    tok_dir = out / "tokenizer"
    tok_hash = hashlib.sha256(f"{corpus.sha256}-{cfg.vocab_size}".encode()).hexdigest()[:16]
    stamp = tok_dir / "build_hash.txt"
    if not cfg.force and stamp.exists() and stamp.read_text() == tok_hash:
        return PreTrainedTokenizerFast.from_pretrained(tok_dir), tok_hash
    tokenizer = train_tokenizer(corpus, cfg.vocab_size)
    tokenizer.save_pretrained(tok_dir)
    stamp.write_text(tok_hash)
    return tokenizer, tok_hash


def _build_model(cfg: TinyBuildConfig, spec: Any, corpus: Any, tokenizer: Any, ids: Any, heldout_text: str,
                 build_hash: str, model_dir: Path) -> BuiltModel:
    """Train one model of the family, score it on the held-out split, save it with its card."""
    t0 = time.perf_counter()
    model = make_model(spec, cfg)
    tokens = train_lm(model, ids, recipe_for(cfg, cfg.train_tokens, spec.lr or cfg.lr), spec.name).tokens
    q = heldout_loss(hf_logits(model), tokenizer, heldout_text, context_length=cfg.seq_len,
                     stride=cfg.seq_len // 2, max_bytes=None, batch_size=cfg.eval_batch_size)
    wall = time.perf_counter() - t0
    counts = count_params(model)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    write_card(model_dir, ModelCard(
        name=spec.name, family="tiny", params=counts.total, non_embedding_params=counts.non_embedding,
        train_tokens=tokens, train_flops=6 * counts.total * tokens, wall_time_s=round(wall, 2),
        build=BuildInfo(architecture="LlamaForCausalLM", spec=asdict(spec),
                        train_flops_non_embedding=6 * counts.non_embedding * tokens,
                        heldout_loss_nats=q.heldout_loss_nats, heldout_bits_per_byte=q.bits_per_byte,
                        corpus=corpus.description, corpus_sha256=corpus.sha256, vocab_size=cfg.vocab_size,
                        seq_len=cfg.seq_len, seed=cfg.seed, torch_threads=torch.get_num_threads(),
                        build_hash=build_hash)))
    log.info("%s: %d non-embedding params, held-out loss %.4f nats/token, %.1f s",
             spec.name, counts.non_embedding, q.heldout_loss_nats, wall)
    return BuiltModel(spec.name, counts.non_embedding, q.heldout_loss_nats, wall, reused=False)


def build_family(cfg: TinyBuildConfig) -> list[BuiltModel]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    specs = [s for s in cfg.models if not cfg.only or s.name in cfg.only]
    t_all = time.perf_counter()
    corpus = load_corpus(cfg.heldout_every, cfg.max_chars)
    log.info("corpus: %s; train %d chars, held-out %d chars", corpus.description, corpus.train_chars,
             corpus.heldout_chars)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "train.txt").write_text(DOC_SEPARATOR.join(corpus.train), encoding="utf-8")
    heldout_text = DOC_SEPARATOR.join(corpus.heldout)
    (data_dir / "heldout.txt").write_text(heldout_text, encoding="utf-8")
    tokenizer, tok_hash = _family_tokenizer(cfg, corpus, out)
    ids = encode_documents(tokenizer, corpus.train)
    log.info("training split: %d tokens (%.2f chars/token)", len(ids), corpus.train_chars / len(ids))

    built: list[BuiltModel] = []
    for spec in specs:
        model_dir = out / spec.name
        build_hash = _build_hash(cfg, spec, corpus.sha256 + tok_hash)
        if not cfg.force and (card := _built_card(model_dir, build_hash)):
            built.append(BuiltModel(spec.name, card.non_embedding_params, card.build.heldout_loss_nats,
                                    card.wall_time_s, reused=True))
            log.info("%s: up to date, reused (force=true rebuilds)", spec.name)
            continue
        built.append(_build_model(cfg, spec, corpus, tokenizer, ids, heldout_text, build_hash, model_dir))
    from harness.tiny.tasks import write_tasks

    counts = write_tasks(data_dir / "heldout.txt", out / "tasks", cfg.seed)
    log.info("ci lm-eval tasks written to %s: %s", out / "tasks", counts)
    log.info("family built in %.1f s", time.perf_counter() - t_all)
    return built
