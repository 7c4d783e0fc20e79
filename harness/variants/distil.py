"""Distilled variants: train a student from a teacher once, save it, then measure it like any model.

The point's ``model`` is where the student starts; ``variant.options`` names the teacher (an
ordinary model config) and the recipe. Loss: ``alpha * T^2 * KL(teacher_T || student_T) +
(1 - alpha) * CE``; ``alpha = 0`` is the ``continue-ce`` control (same init, same tokens, plain
cross-entropy), so the distillation gain is measured against the extra training, not against
the untouched baseline. Training is the project's one loop (``harness.tiny.train``) with this loss.
The student is saved under ``<out_root>/<recipe hash>/`` with a card and reused unless forced.
Options are typed by ``harness.config.DistilOptions``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

from harness.models.card import CardError, DistillationInfo, ModelCard, read_card, write_card
from harness.config import STUDENT_INITS, DistilOptions, ModelConfig, StudentInit, VariantConfig
from harness.models import load_model
from harness.models.params import count_params
from harness.tiny.train import TrainRecipe, steps_for, train_lm
from harness.variants import PreparedModel, VariantInfo, parse_dtype, typed_options

log = logging.getLogger(__name__)

METHODS = ("kd", "continue-ce")
# Options that do not change the trained student (where it goes, whether to redo it).
_NOT_RECIPE = ("out_root", "force")


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


def kd_loss(teacher, alpha: float, temperature: float, vocab: int):
    """The distillation loss for ``harness.tiny.train.train_lm``: KL to the teacher at ``temperature``
    (scaled by T^2, Hinton et al. 2015) mixed with the student's own cross-entropy."""
    def loss(model, batch):
        out = model(input_ids=batch, labels=batch)
        if alpha == 0:
            return out.loss
        with torch.no_grad():
            t_logits = teacher(input_ids=batch).logits[..., :vocab]
        s_logits = out.logits[..., :vocab]
        kl = F.kl_div(F.log_softmax(s_logits / temperature, -1).flatten(0, 1),
                      F.log_softmax(t_logits / temperature, -1).flatten(0, 1), log_target=True, reduction="batchmean")
        return alpha * temperature**2 * kl + (1 - alpha) * out.loss
    return loss


def _init_student(model_cfg: ModelConfig, init: StudentInit, dtype, device):
    loaded = load_model(model_cfg, dtype, device)
    if init.kind == "model":
        return loaded, f"{model_cfg.name} (pretrained)"
    if init.kind == "every_kth_layer":  # DistilBERT-style: keep layers 0, k, 2k, ...
        layers = loaded.model.model.layers
        kept = torch.nn.ModuleList([layers[i] for i in range(0, len(layers), init.k)])
        for new_idx, layer in enumerate(kept):
            layer.self_attn.layer_idx = new_idx
        loaded.model.model.layers = kept
        loaded.model.config.num_hidden_layers = len(kept)
        if hasattr(loaded.model.config, "layer_types") and loaded.model.config.layer_types:
            loaded.model.config.layer_types = loaded.model.config.layer_types[: len(kept)]
        return loaded, f"{model_cfg.name} with every {init.k}-th layer kept ({len(kept)} of {len(layers)})"
    if init.kind == "fresh":  # the same architecture with a new shape, randomly initialised
        from transformers import AutoModelForCausalLM

        config = loaded.model.config
        for key, value in init.shape.items():
            if not hasattr(config, key):
                raise ValueError(f"student_init.shape.{key}: not a field of {type(config).__name__}")
            setattr(config, key, value)
        torch.manual_seed(init.seed)
        loaded.model = AutoModelForCausalLM.from_config(config).to(device)
        return loaded, f"fresh {config.model_type} {dict(init.shape)}"
    raise ValueError(f"student_init.kind={init.kind!r}; valid: {', '.join(STUDENT_INITS)}")


def recipe_hash(model_cfg: ModelConfig, opts: DistilOptions, method: str) -> str:
    """Everything that changes the trained student: student, teacher (for kd), method and recipe."""
    recipe = {k: v for k, v in asdict(opts).items() if k not in _NOT_RECIPE}
    if method != "kd":
        recipe["alpha"] = 0.0  # continue-ce trains without the teacher
    blob = {"student": asdict(model_cfg), "method": method, "format": 3, **recipe}  # 3: harness.tiny.train's loop
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def distil(model_cfg: ModelConfig, opts: DistilOptions, method: str, device: torch.device, out_dir: Path,
           key: str) -> ModelCard:
    """Train and save the student; returns its card."""
    dtype = torch.float32  # training in fp32; the variant's dtype applies when it is measured
    alpha = 0.0 if method == "continue-ce" else opts.alpha
    student, init_desc = _init_student(model_cfg, opts.student_init, dtype, device)
    teacher = None
    vocab = len(student.tokenizer)
    if alpha > 0:
        teacher = load_model(opts.teacher, dtype, device)
        vocab = shared_vocab_size(teacher.model, student.model, teacher.tokenizer, student.tokenizer)
        teacher.model.eval().requires_grad_(False)
    text_path = Path(opts.text)
    if not text_path.exists():
        raise FileNotFoundError(f"variant.options.text={text_path} does not exist (`meekbench build-tiny` writes "
                                "the tiny family's training split)")
    ids = torch.tensor(student.tokenizer(text_path.read_text(encoding="utf-8"), add_special_tokens=False,
                                         verbose=False)["input_ids"], dtype=torch.long)
    recipe = TrainRecipe.from_settings(opts, steps_for(opts.train_tokens, opts.batch_size, opts.seq_len),
                                       opts.lr, opts.seed)
    t0 = time.perf_counter()
    torch.manual_seed(opts.seed)
    trained = train_lm(student.model, ids, recipe, f"{method} {model_cfg.name}",
                       loss_fn=kd_loss(teacher.model if teacher else None, alpha, opts.temperature, vocab))
    wall = time.perf_counter() - t0
    model = student.model.eval()
    tokens, steps = trained.tokens, trained.steps
    s_counts = count_params(model)
    t_counts = count_params(teacher.model) if teacher else None
    t_params = t_counts.total if t_counts else 0
    base = student.card
    base_tokens = (base.train_tokens if base else None) or model_cfg.train_tokens or 0
    distil_flops = 2 * t_params * tokens + 6 * s_counts.total * tokens
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    student.tokenizer.save_pretrained(out_dir)
    card = ModelCard(
        name=model_cfg.name, family=model_cfg.family, params=s_counts.total,
        non_embedding_params=s_counts.non_embedding, train_tokens=base_tokens + tokens,
        train_flops=(base.train_flops if base else 0) + distil_flops, wall_time_s=round(wall, 2),
        distillation=DistillationInfo(
            method=method, recipe_hash=key, teacher=opts.teacher.name if teacher else None,
            teacher_params=t_params or None,
            teacher_non_embedding_params=t_counts.non_embedding if t_counts else None, student_init=init_desc, alpha=alpha, temperature=opts.temperature,
            distil_tokens=tokens, distil_flops=distil_flops, final_train_loss=trained.final_train_loss,
            text=str(text_path), seed=opts.seed, steps=steps))
    write_card(out_dir, card)
    log.info("%s student of %s saved to %s (%d steps, %.1f s)", method, card.distillation.teacher, out_dir, steps,
             wall)
    return card


def _trained_card(out_dir: Path) -> ModelCard | None:
    try:
        card = read_card(out_dir)
    except CardError:
        return None  # an older format: train again
    return card if card and card.distillation else None


def prepare(model_cfg: ModelConfig, variant_cfg: VariantConfig, device: torch.device,
            offline: bool | None = None) -> PreparedModel:
    method = variant_cfg.method or "kd"
    if method not in METHODS:
        raise ValueError(f"variant.method={method!r}; valid for kind=distil: {', '.join(METHODS)}")
    opts = typed_options(variant_cfg, DistilOptions)
    key = recipe_hash(model_cfg, opts, method)
    out_dir = Path(opts.out_root) / key
    if opts.force or _trained_card(out_dir) is None:
        distil(model_cfg, opts, method, device, out_dir, key)
    else:
        log.info("reusing the distilled student in %s (variant.options.force=true retrains)", out_dir)
    student_cfg = ModelConfig(name=model_cfg.name, source="local", path=str(out_dir), family=model_cfg.family,
                              distilled_from=opts.teacher.name if method == "kd" else None)
    loaded = load_model(student_cfg, parse_dtype(variant_cfg.dtype), device, offline)
    options = {k: v for k, v in asdict(opts).items() if k != "teacher"} | {"teacher": opts.teacher.name}
    info = VariantInfo(name=variant_cfg.name, kind="distil", dtype=variant_cfg.dtype, method=method,
                       library="transformers", library_version=transformers.__version__,
                       weight_bits=float(torch.finfo(parse_dtype(variant_cfg.dtype)).bits),
                       options=options, extra=loaded.card.model_dump())
    return PreparedModel(loaded, info)
