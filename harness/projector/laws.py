"""Scaling laws (numpy only; the projector never imports torch)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chinchilla:
    """L(N, D) = E + A / N^a + B / D^b (Hoffmann et al. 2022)."""

    E: float
    A: float
    B: float
    a: float
    b: float

    # The fit's own coordinates (harness/projector/fit.py): every one unconstrained, so a joint
    # normal on them (a published fit's covariance) keeps E, A, B > 0
    COORDINATES = ("log_E", "log_A", "log_B", "a", "b")

    def loss(self, n, d):
        return self.E + self.A / np.power(n, self.a) + self.B / np.power(d, self.b)

    def coordinates(self) -> np.ndarray:
        with np.errstate(divide="ignore"):  # E = 0 (a fit that puts the floor at 0): log E = -inf
            return np.array([np.log(self.E), np.log(self.A), np.log(self.B), self.a, self.b])

    @classmethod
    def from_coordinates(cls, x) -> "Chinchilla":
        log_e, log_a, log_b, a, b = (float(v) for v in x)
        return cls(E=float(np.exp(log_e)), A=float(np.exp(log_a)), B=float(np.exp(log_b)), a=a, b=b)

    def _g(self) -> float:
        return (self.a * self.A / (self.b * self.B)) ** (1 / (self.a + self.b))

    def n_opt(self, c):
        """The compute-optimal N* = G (C/6)^(b/(a+b)) at compute C."""
        return self._g() * np.power(np.asarray(c, float) / 6, self.b / (self.a + self.b))

    def optimal_compute_for(self, n):
        """The compute C at which n is the compute-optimal size: inverts N* = G (C/6)^(b/(a+b))."""
        return 6 * np.power(np.asarray(n, float) / self._g(), (self.a + self.b) / self.b)

    def compute_optimal(self) -> "ComputeLaw":
        """L(C) = L0 + A_c C^-alpha along the compute-optimal allocation with C = 6 N D.

        Minimising A N^-a + B D^-b with N D = C/6 gives N* = G (C/6)^(b/(a+b)) with
        G = (a A / (b B))^(1/(a+b)), and the loss falls as (C/6)^(-ab/(a+b)).
        """
        a, b = self.a, self.b
        g = self._g()
        k = self.A * g ** (-a) + self.B * g**b
        alpha = a * b / (a + b)
        return ComputeLaw(L0=self.E, A=k * 6**alpha, alpha=alpha)


@dataclass(frozen=True)
class ComputeLaw:
    """L(C) = L0 + A C^-alpha, C in FLOPs."""

    L0: float
    A: float
    alpha: float

    def loss(self, c):
        return self.L0 + self.A * np.power(c, -self.alpha)


@dataclass(frozen=True)
class PowerLaw:
    """L(x) = E + A x^-a: loss against size N for a family trained on a fixed D (or against C)."""

    E: float
    A: float
    a: float

    def loss(self, x):
        return self.E + self.A * np.power(x, -self.a)

    def invert(self, loss):
        """The x at which the law reaches ``loss`` (inf where loss <= E: the law never gets there)."""
        loss = np.asarray(loss, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.power(self.A / (loss - self.E), 1 / self.a)
        return np.where(loss > self.E, x, np.inf)


CHINCHILLA = Chinchilla(E=1.69, A=406.4, B=410.7, a=0.34, b=0.28)  # Hoffmann et al. 2022, rounded as published
# The same fit's unrounded E, a, b (Hoffmann et al.'s TeX source, as quoted by Besiroglu et al. 2024;
# A and B as published): exponent ab/(a+b) = 0.1548 where the rounded values give 0.1535.
CHINCHILLA_UNROUNDED = Chinchilla(E=1.6934, A=406.4, B=410.7, a=0.3392, b=0.2849)
EPOCH_REFIT = Chinchilla(E=1.817, A=482.0, B=2085.4, a=0.3478, b=0.3658)  # Besiroglu et al. 2024
