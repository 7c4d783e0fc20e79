"""Distilled variants: train a student from a teacher once, save it, then measure it like any model.

The point's ``model`` is where the student starts; ``variant.options`` names the teacher (an
ordinary model config) and the recipe. Loss: ``alpha * T^2 * KL(teacher_T || student_T) +
(1 - alpha) * CE``; ``alpha = 0`` is the ``continue-ce`` control (same init, same tokens, plain
cross-entropy), so the distillation gain is measured against the extra training, not against
the untouched baseline. Training uses a transformers ``Trainer`` subclass with a custom loss.
The student is saved under ``<out_root>/<recipe hash>/`` with a card and reused unless forced.
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from transformers import Trainer, TrainingArguments

from harness.config import ModelConfig, VariantConfig
from harness.models import load_model
from harness.params import count_params
from harness.variants import PreparedModel, VariantInfo, parse_dtype

log = logging.getLogger(__name__)

CARD = "card.json"
_RECIPE_KEYS = ("method", "alpha", "temperature", "train_tokens", "seq_len", "batch_size", "lr", "warmup_fraction",
                "weight_decay", "seed", "student_init", "text")


class VocabularyMismatchError(ValueError):
    """Teacher and student tokenise differently: their distributions cannot be compared."""


def shared_vocab_size(teacher, student, t_tok, s_tok) -> int:
    """The logit width both models share; errors unless the tokenizers agree on every shared id."""
    if t_tok.get_vocab() != s_tok.get_vocab():
        t, s = t_tok.get_vocab(), s_tok.get_vocab()
        diff = sorted(set(t.items()) ^ set(s.items()))[:3]
        raise VocabularyMismatchError(f"teacher and student tokenizers differ ({len(t)} vs {len(s)} entries; "
                                      f"first differences {diff}); distillation needs one vocabulary")
    tv, sv = teacher.get_output_embeddings().weight.shape[0], student.get_output_embeddings().weight.shape[0]
    if tv != sv:  # same tokenizer, logits padded to different widths (some Qwen2.5 sizes)
        log.info("teacher logits %d wide, student %d: slicing both to the shared %d", tv, sv, min(tv, sv))
    return min(tv, sv, len(t_tok))


class WindowDataset(torch.utils.data.Dataset):
    """Random windows of a token stream, fixed by seed (the same windows for KD and its control)."""

    def __init__(self, ids: torch.Tensor, seq_len: int, count: int, seed: int):
        if len(ids) <= seq_len + 1:
            raise ValueError(f"training text has {len(ids)} tokens; need more than seq_len={seq_len}")
        gen = torch.Generator().manual_seed(seed)
        self.ids, self.seq_len = ids, seq_len
        self.starts = torch.randint(0, len(ids) - seq_len - 1, (count,), generator=gen).tolist()

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        w = self.ids[self.starts[i] : self.starts[i] + self.seq_len]
        return {"input_ids": w, "labels": w.clone()}


class DistillTrainer(Trainer):
    def __init__(self, *args, teacher=None, alpha: float = 0.5, temperature: float = 2.0, vocab: int = 0, **kw):
        super().__init__(*args, **kw)
        self.teacher, self.alpha, self.temperature, self.vocab = teacher, alpha, temperature, vocab

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(**inputs)
        loss = out.loss
        if self.alpha > 0:
            with torch.no_grad():
                t_logits = self.teacher(input_ids=inputs["input_ids"]).logits[..., : self.vocab]
            s_logits = out.logits[..., : self.vocab]
            temp = self.temperature
            kl = F.kl_div(F.log_softmax(s_logits / temp, -1).flatten(0, 1),
                          F.log_softmax(t_logits / temp, -1).flatten(0, 1), log_target=True, reduction="batchmean")
            loss = self.alpha * temp**2 * kl + (1 - self.alpha) * out.loss
        return (loss, out) if return_outputs else loss


def _init_student(model_cfg: ModelConfig, init: dict[str, Any], dtype, device):
    kind = init.get("kind", "model")
    loaded = load_model(model_cfg, dtype, device)
    if kind == "model":
        return loaded, f"{model_cfg.name} (pretrained)"
    if kind == "every_kth_layer":  # DistilBERT-style: keep layers 0, k, 2k, ...
        k = int(init.get("k", 2))
        layers = loaded.model.model.layers
        kept = torch.nn.ModuleList([layers[i] for i in range(0, len(layers), k)])
        for new_idx, layer in enumerate(kept):
            layer.self_attn.layer_idx = new_idx
        loaded.model.model.layers = kept
        loaded.model.config.num_hidden_layers = len(kept)
        if hasattr(loaded.model.config, "layer_types") and loaded.model.config.layer_types:
            loaded.model.config.layer_types = loaded.model.config.layer_types[: len(kept)]
        return loaded, f"{model_cfg.name} with every {k}-th layer kept ({len(kept)} of {len(layers)})"
    if kind == "fresh":  # the same architecture with a new shape, randomly initialised
        from transformers import AutoModelForCausalLM

        config = loaded.model.config
        for key, value in dict(init.get("shape", {})).items():
            setattr(config, key, value)
        torch.manual_seed(int(init.get("seed", 0)))
        loaded.model = AutoModelForCausalLM.from_config(config).to(device)
        return loaded, f"fresh {config.model_type} {dict(init.get('shape', {}))}"
    raise ValueError(f"student_init.kind={kind!r}; valid: model, every_kth_layer, fresh")


def _recipe_hash(model_cfg: ModelConfig, teacher_cfg: ModelConfig, opts: dict[str, Any]) -> str:
    blob = {"student": asdict(model_cfg), "teacher": asdict(teacher_cfg), "format": 1,
            **{k: opts.get(k) for k in _RECIPE_KEYS}}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def distil(model_cfg: ModelConfig, teacher_cfg: ModelConfig, opts: dict[str, Any], method: str,
           device: torch.device, out_dir: Path) -> dict[str, Any]:
    """Train and save the student; returns its card."""
    dtype = torch.float32  # training in fp32; the variant's dtype applies when it is measured
    alpha = 0.0 if method == "continue-ce" else float(opts.get("alpha", 0.5))
    student, init_desc = _init_student(model_cfg, dict(opts.get("student_init", {})), dtype, device)
    teacher = None
    vocab = len(student.tokenizer)
    if alpha > 0:
        teacher = load_model(teacher_cfg, dtype, device)
        vocab = shared_vocab_size(teacher.model, student.model, teacher.tokenizer, student.tokenizer)
        teacher.model.eval().requires_grad_(False)
    text_path = Path(opts["text"])
    if not text_path.exists():
        raise FileNotFoundError(f"variant.options.text={text_path} does not exist (`meekbench build-tiny` writes "
                                "the tiny family's training split)")
    ids = torch.tensor(student.tokenizer(text_path.read_text(encoding="utf-8"), add_special_tokens=False,
                                         verbose=False)["input_ids"], dtype=torch.long)
    seq, bs = int(opts.get("seq_len", 128)), int(opts.get("batch_size", 16))
    steps = int(opts["train_tokens"]) // (seq * bs)
    if steps < 1:
        raise ValueError(f"train_tokens={opts['train_tokens']} is less than one batch ({bs} x {seq})")
    data = WindowDataset(ids, seq, steps * bs, int(opts.get("seed", 0)))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch, per_device_train_batch_size=bs, max_steps=steps,
            learning_rate=float(opts.get("lr", 1e-3)), lr_scheduler_type="cosine",
            warmup_steps=float(opts.get("warmup_fraction", 0.05)),  # transformers 5: a float < 1 is a ratio
            weight_decay=float(opts.get("weight_decay", 0.0)),
            max_grad_norm=1.0, seed=int(opts.get("seed", 0)), data_seed=int(opts.get("seed", 0)),
            report_to=[], save_strategy="no", logging_steps=max(1, steps // 10), use_cpu=device.type == "cpu",
            dataloader_num_workers=0, remove_unused_columns=False)
        trainer = DistillTrainer(model=student.model, args=args, train_dataset=data,
                                 teacher=teacher.model if teacher else None, alpha=alpha,
                                 temperature=float(opts.get("temperature", 2.0)), vocab=vocab)
        train_out = trainer.train()
    wall = time.perf_counter() - t0
    model = student.model.eval()
    tokens = steps * bs * seq
    s_counts = count_params(model)
    t_params = count_params(teacher.model).total if teacher else 0
    base_tokens = student.card.get("train_tokens") or model_cfg.train_tokens or 0
    base_flops = student.card.get("train_flops") or 0
    distill_flops = 2 * t_params * tokens + 6 * s_counts.total * tokens
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    student.tokenizer.save_pretrained(out_dir)
    card = {
        "name": model_cfg.name, "family": model_cfg.family, "method": method,
        "teacher": teacher_cfg.name if teacher else None, "teacher_params": t_params or None,
        "student_init": init_desc, "alpha": alpha, "temperature": float(opts.get("temperature", 2.0)),
        "params": s_counts.total, "non_embedding_params": s_counts.non_embedding,
        "distill_tokens": tokens, "train_tokens": base_tokens + tokens,
        "distill_flops": distill_flops, "train_flops": base_flops + distill_flops,
        "final_train_loss": float(train_out.training_loss), "wall_time_s": round(wall, 2),
        "text": str(text_path), "seed": int(opts.get("seed", 0)), "steps": steps,
    }
    (out_dir / CARD).write_text(json.dumps(card, indent=2))
    log.info("%s student of %s saved to %s (%d steps, %.1f s)", method, card["teacher"], out_dir, steps, wall)
    return card


def prepare(model_cfg: ModelConfig, variant_cfg: VariantConfig, device: torch.device,
            offline: bool | None = None) -> PreparedModel:
    method = variant_cfg.method or "kd"
    if method not in ("kd", "continue-ce"):
        raise ValueError(f"variant.method={method!r}; valid for kind=distil: kd, continue-ce")
    opts = dict(variant_cfg.options)
    teacher_cfg = ModelConfig(**opts.get("teacher", {})) if opts.get("teacher") else None
    if teacher_cfg is None:
        raise ValueError("variant.options.teacher is missing: a model config (e.g. defaults `/model@options.teacher`)")
    key = _recipe_hash(model_cfg, teacher_cfg, opts | {"method": method, "alpha": opts.get("alpha") if method == "kd" else 0})
    out_dir = Path(opts.get("out_root", "models/distilled")) / key
    if opts.get("force") or not (out_dir / CARD).exists():
        distil(model_cfg, teacher_cfg, opts, method, device, out_dir)
    else:
        log.info("reusing the distilled student in %s (variant.options.force=true retrains)", out_dir)
    student_cfg = ModelConfig(name=model_cfg.name, source="local", path=str(out_dir), family=model_cfg.family,
                              distilled_from=teacher_cfg.name if method == "kd" else None)
    loaded = load_model(student_cfg, parse_dtype(variant_cfg.dtype), device, offline)
    card = loaded.card
    info = VariantInfo(name=variant_cfg.name, kind="distil", dtype=variant_cfg.dtype, method=method,
                       library="transformers", library_version=transformers.__version__,
                       weight_bits=float(torch.finfo(parse_dtype(variant_cfg.dtype)).bits),
                       options={k: v for k, v in opts.items() if k != "teacher"} | {"teacher": teacher_cfg.name},
                       extra=card)
    return PreparedModel(loaded, info)
