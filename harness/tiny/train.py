"""The one training loop: the tiny family, the IsoFLOP grid and distilled students all train here.

Random windows of a token stream, drawn by a generator seeded with the recipe's seed (so every
run of a recipe sees the same windows in the same order), AdamW, linear warm-up then cosine
decay that ends exactly at the run's own last step, gradient clipping. The loss is the causal
LM cross-entropy unless the caller passes its own (distillation mixes in a teacher's KL).

With a ``checkpoint`` path the loop saves model, optimiser and generator state every
``checkpoint_every`` steps (atomically) and resumes from it: a killed build continues where it
stopped and, with the generator restored, sees the very batches it would have seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import torch
from tqdm.auto import tqdm

from harness.io import atomic_file

if TYPE_CHECKING:
    from harness.config import TrainingSettings


@dataclass(frozen=True)
class TrainRecipe:
    steps: int
    batch_size: int
    seq_len: int
    peak_lr: float
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.1  # the cosine ends at this fraction of the peak
    weight_decay: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0

    @property
    def tokens(self) -> int:
        return self.steps * self.batch_size * self.seq_len

    @classmethod
    def from_settings(cls, settings: TrainingSettings, steps: int, peak_lr: float, seed: int) -> "TrainRecipe":
        """The one recipe builder: the family, the grid and distillation pass their shared settings."""
        return cls(steps=steps, batch_size=settings.batch_size, seq_len=settings.seq_len, peak_lr=peak_lr,
                   warmup_fraction=settings.warmup_fraction, min_lr_fraction=settings.min_lr_fraction,
                   weight_decay=settings.weight_decay, adam_betas=tuple(settings.adam_betas),
                   grad_clip=settings.grad_clip, seed=seed)


@dataclass(frozen=True)
class Trained:
    tokens: int
    steps: int
    final_train_loss: float  # mean over the last (up to) 20 steps
    resumed_from_step: int  # 0 when trained from the start


LossFn = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


def lm_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return model(input_ids=batch, labels=batch).loss


def steps_for(tokens: int, batch_size: int, seq_len: int) -> int:
    steps = tokens // (batch_size * seq_len)
    if steps < 1:
        raise ValueError(f"train_tokens={tokens} is less than one batch ({batch_size} x {seq_len})")
    return steps


def lr_at(step: int, total: int, peak: float, warmup_fraction: float, min_fraction: float) -> float:
    """Linear warm-up, then cosine decay from ``peak`` to ``min_fraction * peak`` at the last step."""
    warm = max(1, int(warmup_fraction * total))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm - 1)
    return peak * (min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _save(path: Path, state: dict) -> None:
    with atomic_file(path, binary=True) as f:
        torch.save(state, f)


def train_lm(model: torch.nn.Module, ids: torch.Tensor, recipe: TrainRecipe, name: str,
             loss_fn: LossFn = lm_loss, checkpoint: Optional[Path] = None, checkpoint_every: int = 100,
             bf16_autocast: bool = False) -> Trained:
    """Train ``model`` on random windows of ``ids`` following ``recipe`` (with ``bf16_autocast``, the
    forward pass under bf16 autocast on the model's device; weights and optimiser stay fp32)."""
    if len(ids) <= recipe.seq_len + 1:
        raise ValueError(f"training text has {len(ids)} tokens; need more than seq_len={recipe.seq_len}")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(recipe.seed)  # same windows, same order, for every run of the recipe
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.peak_lr, betas=tuple(recipe.adam_betas),
                            weight_decay=recipe.weight_decay)
    start, recent = 0, []
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state.get("recipe") == recipe:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            start, recent = state["step"], state["recent"]
    model.train()
    bar = tqdm(range(start, recipe.steps), desc=f"train {name}", unit="step", initial=start, total=recipe.steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe.steps, recipe.peak_lr, recipe.warmup_fraction, recipe.min_lr_fraction)
        starts = torch.randint(0, len(ids) - recipe.seq_len - 1, (recipe.batch_size,), generator=gen)
        batch = torch.stack([ids[s : s + recipe.seq_len] for s in starts.tolist()]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16_autocast):
            loss = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        recent = (recent + [loss.item()])[-20:]
        if step % 10 == 0:
            bar.set_postfix(loss=f"{recent[-1]:.3f}")
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < recipe.steps:
            _save(checkpoint, {"recipe": recipe, "step": step + 1, "recent": recent, "model": model.state_dict(),
                               "optimizer": opt.state_dict(), "generator": gen.get_state()})
    bar.close()
    model.eval()
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return Trained(tokens=recipe.tokens, steps=recipe.steps, final_train_loss=sum(recent) / max(1, len(recent)),
                   resumed_from_step=start)
