"""`meekbench fit-law`: the grid's law, fitted by harness/projector/isoflop.py, written as
law.json with law.md (each approach's exponents with their bands, the agreement check, the
extrapolation test) and the figures (IsoFLOP curves, N*(C), residuals)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from harness.config import LawFitConfig
from harness.projector.grid_runs import Run, confounds, load_grid, load_table, lr_check, rules_check
from harness.projector.calibration import with_n_opt_calibration
from harness.projector.isoflop import DEPTH_Z, by_budget, fit_grid, loglog_slope, regime
from harness.projector.laws import Chinchilla


def plot_law(runs: list[Run], fits: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for c, rs in by_budget(runs).items():
        pts = ax.scatter([r.n for r in rs], [r.loss for r in rs], s=18,
                         label="runs (no budgets)" if c is None else f"C = {c:.2g}")
        opt = next((o for o in fits.get("approach2", {}).get("optima", []) if o["budget_flops"] == c), None)
        if opt:
            x = np.linspace(np.log(min(r.n for r in rs)), np.log(max(r.n for r in rs)), 50)
            p0, p1, p2 = opt["parabola"]
            ax.plot(np.exp(x), p0 + p1 * x + p2 * x**2, color=pts.get_facecolor()[0], lw=1)
            ax.scatter([opt["n_opt"]], [opt["loss"]], marker="*", s=80, color=pts.get_facecolor()[0])
    ax.set(xscale="log", xlabel="parameters N (total)", ylabel="held-out loss (nats/token)",
           title="IsoFLOP curves with fitted parabolas (stars: vertices)")
    written.append(_save(fig, ax, out / "isoflop.png"))

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    flops = [r.flops for r in runs]
    cs = np.geomspace(min(flops) / 3, max(flops) * 3, 50)
    for key, label in (("approach1", "1: envelope"), ("approach2", "2: parabolas")):
        res = fits.get(key, {})
        if "optima" in res:
            c = [o["budget_flops"] for o in res["optima"]]
            n = [o["n_opt"] for o in res["optima"]]
            line = ax.scatter(c, n, s=20)
            a, k = loglog_slope(c, n)
            ax.plot(cs, np.exp(k) * cs**a, color=line.get_facecolor()[0], lw=1, label=f"{label}: a = {a:.3f}")
    law = Chinchilla(**fits["approach3"]["params"])
    ax.plot(cs, law.n_opt(cs), "k--", lw=1, label=f"3: L(N, D) fit: a = {fits['approach3']['compute_optimal']['a']:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="compute-optimal N*",
           title="N*(C) by approach")
    written.append(_save(fig, ax, out / "n_opt.png"))

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    resid = [np.log(law.loss(r.n, r.d)) - np.log(r.loss) for r in runs]
    ax.scatter([r.flops for r in runs], resid, s=18)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="run FLOPs", ylabel="log predicted - log measured loss",
           title="Approach 3: residuals of the L(N, D) fit")
    written.append(_save(fig, ax, out / "residuals.png", legend=False))
    return written


def _save(fig, ax, path: Path, legend: bool = True) -> str:
    import matplotlib.pyplot as plt

    if legend:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _fmt_band(x, band, fmt=".4f") -> str:
    return f"{x:{fmt}}" + (f" [{band[0]:{fmt}}, {band[1]:{fmt}}]" if band else " (no band)")


def regime_sentence(reg: dict) -> str:
    """The law's exponents beside the published ones (law.md and the projection's headline)."""
    pub = reg["published"]
    return (f"exponent {_fmt_band(reg['exponent'], reg['exponent_band'])} (Chinchilla "
            f"{pub['chinchilla']['exponent']:.4f}, Epoch {pub['epoch']['exponent']:.4f}; the paper's "
            f"{reg['paper_alpha']} is {'inside' if reg['paper_alpha_inside_band'] else 'outside'} the band); N* ~ C^"
            + (f"{_fmt_band(reg['n_opt_exponent'], reg['n_opt_exponent_band'], '.3f')}"
               if reg["n_opt_exponent"] is not None else "(not recorded)")
            + (f", calibrated [{calibrated[0]:.3f}, {calibrated[1]:.3f}] ({reg['n_opt_calibration']})"
               if (calibrated := reg.get("n_opt_exponent_band_calibrated")) else "")
            + f" (Chinchilla {pub['chinchilla']['n_opt_exponent']:.3f}, Epoch {pub['epoch']['n_opt_exponent']:.3f})")


def regime_lines(reg: dict) -> list[str]:
    """The law in its own regime, first: exponents beside the published ones, and its warnings."""
    return [f"**In its own regime**: {regime_sentence(reg)}."] + \
        ([f"- **Warning**: {w}." for w in reg["warnings"]] or ["- No warning signs."]) + \
        [f"- **Confound** (in no band): {c}." for c in reg.get("confounds", [])]


def _max_epochs(meta: dict) -> float | None:
    return max((r["epochs"] for r in meta["runs"]), default=None)


def _provenance(meta: dict) -> str:
    if meta["train_tokens"] is None:  # a table of published runs
        return f"{meta['text']} (sha256 {meta['text_sha256'][:12]})"
    return (f"text: {meta['text']} ({meta['train_tokens']} training tokens, sha256 {meta['text_sha256'][:12]}), "
            f"most epochs {_max_epochs(meta):.2f}")


def _approach_rows(fits: dict) -> list[str]:
    """The table's rows: approaches 1 and 2, approach 3, and its side fits."""
    lines: list[str] = []
    a3 = fits["approach3"]
    co, cob = a3["compute_optimal"], a3["compute_optimal_bands"]
    for key, label in (("approach1", "1: envelope"), ("approach2", "2: parabolas")):
        r = fits[key]
        if "refused" in r:
            lines.append(f"| {label} | refused | | | {r['refused']} |")
        else:
            lines.append(f"| {label} | {_fmt_band(r['a'], r['a_band'])} | {_fmt_band(r['b'], r['b_band'])} | "
                         f"{r['a_plus_b']:.3f} | {r['note']} (kept {r['bootstrap_kept']}/{r['bootstrap_attempted']}) |")
    fit = a3["fit"]
    lines.append(f"| 3: L(N, D) | {_fmt_band(co['a'], cob['a'])} | {_fmt_band(co['b'], cob['b'])} | 1 (C = 6ND) | "
                 f"{fit['n_points']} runs, {fit['dof']} dof, converged {fit['converged']}, bootstrap kept "
                 f"{fit['bootstrap_kept']}/{fit['bootstrap_attempted']} |")
    ne, ind = fits.get("approach3_non_embedding"), fits.get("approach3_in_distribution")
    side_fits = [("3 on non-embedding N", ne, f"embeddings are {ne['embedding_share_of_n'][0]:.0%}-"
                  f"{ne['embedding_share_of_n'][1]:.0%} of total N" if ne else ""),
                 ("3 on in-distribution held-out loss", ind,
                  "the loss on documents held out from the grid's own training mixture")]
    for label, side, note in side_fits:
        if side:  # point fits beside the main one
            sco = side["compute_optimal"]
            lines.append(f"| {label} | {sco['a']:.4f} (point fit) | {sco['b']:.4f} | 1 | {note}; compute exponent "
                         f"{sco['exponent']:.4f}; not used by the projector |")
    return lines


def _check_lines(fits: dict) -> list[str]:
    """The grid's checks: its learning rate, its build rules, its depth."""
    lines: list[str] = []
    lr = fits.get("lr_check")
    if lr and "refused" not in lr:
        losses = ", ".join(f"{m:g}x {v:.4f}" for m, v in lr["loss_by_multiplier"])
        spread = f"{lr['seed_spread_nats']:.4f}" if lr["seed_spread_nats"] is not None else "not measured"
        lines.append(f"LR check ({lr['shape']} at {lr['budget_flops']:.3g} FLOPs, seed {lr['seed']}; held-out loss by "
                     f"multiple of the rule's lr): {losses}. The rule's lr is "
                     + ("the best of the sweep" if lr["best_multiplier"] == 1.0 else
                        f"{lr['rule_behind_best_nats']:.4f} nats behind {lr['best_multiplier']:g}x, "
                        + ("within" if lr["rule_near_optimum"] else "beyond") + f" the seed spread ({spread})")
                     + ".")
    elif lr:
        lines.append(f"LR check: refused ({lr['refused']}).")
    rules = fits.get("rules_check")
    if rules:
        r = rules["rules"]
        lines.append(f"Rules (build-grid's `rules`): at least {r['min_steps']} steps of a fixed batch, aspect ratio "
                     f"hidden/layers in [{r['aspect_ratio'][0]:g}, {r['aspect_ratio'][1]:g}], heads of at least "
                     f"{r['min_head_dim']} dimensions: "
                     + (f"{len(rules['broken'])} of {rules['runs']} runs break them ("
                        + "; ".join(f"{k}: {', '.join(v)}" for k, v in list(rules["broken"].items())[:3])
                        + ("; ..." if len(rules["broken"]) > 3 else "") + ")." if rules["broken"] else
                        "every run keeps them."))
    depth = fits.get("depth_check")
    if depth:
        means = ", ".join(f"{k} layer(s) {v:+.4f} ({depth['runs_by_layers'][k]} runs)"
                          for k, v in depth["mean_log_residual_by_layers"].items())
        lines.append(f"Depth check (approach 3's mean log residual by depth): {means}; the widest pair is "
                     f"{depth['z']:.1f} standard errors apart, " + ("more" if depth["depth_shows"] else "not more")
                     + f" than {DEPTH_Z:g}: depth {'shows' if depth['depth_shows'] else 'does not show'} beyond N.")
    return lines


def _extrapolation_line(fits: dict) -> str:
    """The law fitted without the largest budget, against that budget's best run."""
    ex = fits["extrapolation_test"]
    if "refused" in ex:
        return f"Extrapolation test: refused ({ex['refused']})."
    return (f"Extrapolation test: fitted without the largest budget ({ex['held_out_budget_flops']:.3g} "
            f"FLOPs, {ex['runs_fitted']} runs), approach 3 predicts its best run at "
            f"{_fmt_band(ex['predicted_loss'], ex['band'])} nats against {ex['measured_loss']:.4f} measured: "
            f"error {ex['error_nats']:+.4f} nats, {'inside' if ex['inside_band'] else 'outside'} the band "
            "(a prediction interval: each refit's prediction times a resampled residual"
            + (f"; the law's mean alone: {_fmt_band(ex['predicted_loss'], ex['mean_band'])}" if ex.get("mean_band")
               else "") + ").")


def law_markdown(meta: dict, fits: dict) -> str:
    lv = int(fits["level"] * 100)
    a3 = fits["approach3"]
    co, cob = a3["compute_optimal"], a3["compute_optimal_bands"]
    lines = [f"# Compute-optimal law of `{meta['grid']}`" + (" (published runs)" if meta["train_tokens"] is None
                                                              else " (a measured IsoFLOP grid)"), "",
             f"{fits['runs']} runs, FLOPs {fits['flops_range'][0]:.3g} to {fits['flops_range'][1]:.3g} "
             f"({np.log10(fits['flops_range'][1] / fits['flops_range'][0]):.2f} decades); {_provenance(meta)}. "
             f"Bands: {lv}% bootstrap over runs.", "", *regime_lines(fits["regime"]), "",
             "| approach | N* ~ C^a | D* ~ C^b | a + b | note |", "|---|---|---|---|---|"]
    lines += _approach_rows(fits)
    p, b = a3["params"], a3["bands"]
    lines += ["", "Approach 3 parameters: " + ", ".join(f"{k} = {_fmt_band(v, b[k], '.4g')}" for k, v in p.items()),
              "", f"Compute-optimal law: L(C) = {co['E']:.4g} + {co['G']:.4g} C^-{co['exponent']:.4f}; exponent "
              f"alpha beta / (alpha + beta) = {_fmt_band(co['exponent'], cob['exponent'])}.", ""]
    ag = fits["agreement"]
    lines.append(f"Agreement: N* exponents {', '.join(f'{k} {v:.3f}' for k, v in ag['a'].items())}; bands overlap: "
                 f"{ag['bands_overlap']}" + "".join(f"; {k} left out of the check: {why}"
                                                   for k, why in ag.get("left_out", {}).items())
                 + ". (Every approach's C is 6 N D, so a + b = 1 by construction.)")
    lines += _check_lines(fits)
    lines.append(_extrapolation_line(fits))
    return "\n".join(lines + ["", "![IsoFLOP curves](isoflop.png)", "", "![N*(C)](n_opt.png)", "",
                              "![residuals](residuals.png)", ""])


def fit_law(cfg: LawFitConfig) -> str:
    meta, runs = load_table(Path(cfg.table)) if cfg.table else load_grid(Path(cfg.grid_dir) / "grid.json")
    if cfg.table:
        meta["grid"] = cfg.grid_name  # a table is named by the command, as a grid by its config
    fits = fit_grid(runs, cfg.resamples, cfg.seed, cfg.huber_delta, cfg.level)
    fits["lr_check"] = None if cfg.table else lr_check(meta)
    fits["rules_check"] = None if cfg.table else rules_check(meta)
    fits["confounds"] = confounds(meta)
    fits["regime"] = with_n_opt_calibration(regime(fits), fits["flops_range"])
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"grid": meta["grid"], "grid_dir": None if cfg.table else str(cfg.grid_dir), "table": cfg.table,
               "text": meta["text"], "text_sha256": meta["text_sha256"], "train_tokens": meta["train_tokens"],
               "max_epochs_seen": _max_epochs(meta), "flops_rule": meta["flops_rule"],
               "n_is": "as the table gives it" if cfg.table else "total parameters (embeddings tied)", **fits,
               "fitted_runs": [asdict(r) for r in runs]}  # the runs fitted, so the law can be drawn on its own
    (out / "law.json").write_text(json.dumps(payload, indent=1, default=float))
    (out / "law.md").write_text(law_markdown(meta, fits))
    plot_law(runs, fits, out)
    return f"law written to {out}/ (law.json, law.md, isoflop.png, n_opt.png, residuals.png)"
