"""projection.md: the headline answers (peak, closing times, lag, what moves t* most) and the
table over time, rendered from a projection's result.
"""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from harness.projector.fit_law import regime_sentence


def _with_band(value: float | None, band: dict[str, Any] | None, unit: str = " y") -> str:
    text = "not within 200 years" if value is None else f"{value:.2f}{unit}"
    if not band or "low" not in band:
        return text
    low, high = band["low"], band["high"]  # None: an end that draws which never get there cover
    if high is None or low is None or high - low > 1e-9 * max(1.0, abs(high)):
        text += " (90% band " + " to ".join("not within 200 years" if x is None else f"{x:.2f}" for x in (low, high))
        text += f"; {band['not_reached']} of {band['samples']} draws never reach it)" if band["not_reached"] else ")"
    return text


def _gap_lines(result: dict[str, Any]) -> list[str]:
    """The training gap: its peak, its closing times, the lag, and what moves t* most."""
    unc = result["uncertainty"]
    numerical = result["t_star_numerical_years"]
    lines = [f"- Peak of the training-loss gap t* = {_with_band(result['t_star_years'], unc['t_star_years'])} "
             f"(numerical: {'%.4f y' % numerical if numerical is not None else result['t_star_note']}); "
             f"the gap there: {_with_band(result['peak_gap_nats'], unc.get('peak_gap_nats'), ' nats')}."]
    for level, years in result["closing_years"].items():
        band = unc["closing_years"][level]
        never = band.get("never_exceeded", 0)
        if years == 0.0 and never == band.get("draws", 1):  # in every draw too
            lines.append(f"- The gap never exceeds {level} nats (its peak is {result['peak_gap_nats']:.4f}).")
            continue
        point = (f"never exceeds it at the point values (its peak is {result['peak_gap_nats']:.4f})" if years == 0.0
                 else f"falls below it after {years:.2f} y at the point values")
        if not never:
            lines.append(f"- Gap below {level} nats after {_with_band(years, band)}." if years != 0.0 else
                         f"- The gap of {level} nats: it {point}.")
            continue
        # the band is conditional on the draws whose gap exceeds the level: said as such, since near
        # the peak the point value can sit outside it
        lines.append(f"- The gap of {level} nats: it {point}; in {never} of {band['draws']} draws it never exceeds "
                     f"it (nothing to close), and over the other {band['draws'] - never} it falls below it after "
                     f"{_with_band(band.get('median'), band)}.")
    horizon = result["t"][-1]
    lines.append(f"- Lag of the meek actor at year {horizon:g}: {_with_band(result['lag_years'][-1], unc['lag_years_at_horizon'])} "
                 f"behind the frontier; its reducible loss is {_with_band(result['reducible_loss_ratio'][-1], unc['reducible_loss_ratio_at_horizon'], 'x')} the frontier's.")
    if unc["sampled"]:
        top = unc["tornado"][0] if unc["tornado"] else None
        lines.append(f"- Sampled jointly ({unc['draws']['kept']} of {unc['draws']['attempted']} draws kept): "
                     f"{', '.join(unc['sampled'])}; everything else at its point value."
                     + (f" Moves t* most: {top['input']} ({top['low_value']:.3g} -> t* {top['t_star_at_low']:.2f} y, "
                        f"{top['high_value']:.3g} -> {top['t_star_at_high']:.2f} y)." if top else ""))
    return lines


def _inference_line(result: dict[str, Any]) -> str:
    """The inference gap at the horizon, and where its cost per token comes from."""
    horizon = result["t"][-1]
    inf = result["inference"]
    band = inf.get("loss_gap_band")
    spread = f" (90% band {band['low'][-1]:.3g} to {band['high'][-1]:.3g})" \
        if band and band["high"][-1] - band["low"][-1] > 1e-12 else ""
    if spread and not band["low"][-1] <= inf["loss_gap"][-1] <= band["high"][-1]:
        # the gap is not monotone in the law's exponent (a flat law and a steep one both close it), so the
        # draws of a very wide band can all lie on one side of the point value's
        spread += (" - the point value lies outside its band: the gap is largest at middling exponents and the "
                   "draws, spread far by the systematic term, mostly lie beyond them; read the band")
    bounds = inf.get("rate_bounds")
    if bounds:
        spread += (f"; at the assumed rate's bounds {bounds['cheap']['loss_gap'][-1]:.3g} nats (compute-bound serving, "
                   f"{bounds['cheap']['effective_params_per_usd']:.3g}) to {bounds['dear']['loss_gap'][-1]:.3g} "
                   f"(batch 1 at its achieved bandwidth, {bounds['dear']['effective_params_per_usd']:.3g}; "
                   "rate_bounds in the JSON says whose figure)")
    rate = inf["effective_params_per_usd"]
    return (f"- Inference gap at year {horizon:g}: {inf['loss_gap'][-1]:.3g} nats{spread} between "
            f"the largest models each actor runs at ${inf['price_per_token_usd']:.3g}/token (meek "
            f"{inf['meek_params'][-1]:.3g} parameters); rate {rate['value']:.3g} effective parameters per "
            f"$/token ({rate['source']}: {rate['note']})"
            + (f"; that cost, linear in N, is read from {inf['rate_extrapolation']['measured_params']:.3g} "
               f"measured parameters to {inf['rate_extrapolation']['read_to_params']:.3g}, "
               f"{inf['rate_extrapolation']['decades_beyond']:.1f} decades beyond" if inf.get("rate_extrapolation")
               else "") + ".")


def _law_lines(result: dict[str, Any]) -> list[str]:
    """The compute law: its exponent and source, its regime, warnings and out-of-sample test, and the
    systematic term of reading it beyond its runs."""
    lines: list[str] = []
    law_src = result["inputs"].get("law.alpha", {})
    reg = result.get("law_regime")
    label = f", WITH {len(reg['warnings'])} WARNING(S)" if reg and reg["warnings"] else ""
    lines.append(f"- Law: alpha = {law_src.get('value', float('nan')):.4f} ({law_src.get('source')}{label}): "
                 f"{law_src.get('note', '')}.")
    if reg:
        lines.append(f"- The measured law in its own regime: {regime_sentence(reg)}."
                     + "".join(f" Warning: {w}." for w in reg["warnings"])
                     + "".join(f" Confound (in no band): {c}." for c in reg.get("confounds", [])))
        test = result["inputs"].get("law.extrapolation_test")
        if test:
            lines.append(f"- Out-of-sample test: {test['note']}.")
    sys_term = result["inputs"].get("law.transfer_systematic")
    if sys_term:
        lines.append(f"- Systematic term in the band (reading beyond the law's runs): sigma = "
                     f"{sys_term['value']:.3g} on the log exponent ({sys_term['note']}).")
    return lines


def _extrapolation_lines(result: dict[str, Any]) -> list[str]:
    """How far the law is read beyond its data, and why t*'s band is as wide as it is."""
    lines: list[str] = []
    unc = result["uncertainty"]
    e = result["extrapolation"]
    reads = "; ".join(f"{k.replace('_', ' ')} at {v['flops']:.2g}" + (
        f" ({v['decades_beyond_data']:.1f} decades beyond)" if v["decades_beyond_data"] is not None else "")
        for k, v in e["reads"].items() if v["flops"] is not None)
    if e["fitted_compute_flops"]:
        lines.append(f"- Extrapolation: the law's runs span {e['fitted_compute_flops'][0]:.2g} to "
                     f"{e['fitted_compute_flops'][1]:.2g} FLOPs ({e['data']}); it is read from {e['read_from_flops']:.2g} "
                     f"to {e['read_to_flops']:.2g}: {e['decades_beyond_data']:.1f} decades beyond its data"
                     + (f" (transfer: {e['transfer']})" if e["transfer"] else "") + f". Where: {reads}.")
    else:
        lines.append(f"- Extrapolation: the law's data range is {e['data']}; it is read from {e['read_from_flops']:.2g} "
                     f"to {e['read_to_flops']:.2g} FLOPs. Where: {reads}.")
    if e["transfer"]:
        top = unc["tornado"][0] if unc["tornado"] else None
        if top and top["input"] == "law.alpha":
            decades = math.log10(e["fitted_compute_flops"][1] / e["fitted_compute_flops"][0])
            own = (result.get("law_regime") or {}).get("exponent_band")
            sys_term = result["inputs"].get("law.transfer_systematic") or {}
            lines.append(f"- Why t*'s band is this wide: the grid's {decades:.2f} decades of FLOPs pin the compute "
                         "exponent to " + (f"{own[0]:.3g}-{own[1]:.3g} (its bootstrap, 90%)" if own else
                                           "an unknown band (no bootstrap)")
                         + (f"; the systematic term for reading it to t*, far beyond its runs (sigma "
                            f"{sys_term['value']:.3g}), widens that to {top['low_value']:.3g}-"
                            f"{top['high_value']:.3g}" if sys_term else "")
                         + "; t* scales as 1/alpha. A grid over more decades narrows both.")
    reach = (result.get("score") or {}).get("extrapolation")
    if reach:
        (lo, hi), (read_lo, read_hi) = reach["fitted_loss_nats"], reach["read_loss_nats"]
        beyond = [f"{reach[k]:.3g} nats {where}" for k, where in (("nats_below_fitted", "below its best measured loss"),
                                                                  ("nats_above_fitted", "above its worst"))
                  if reach[k] > 0]
        lines.append(f"- Score: the loss-to-accuracy sigmoid was fitted on held-out losses {lo:.3g}-{hi:.3g} nats "
                     f"and is read at {read_lo:.3g}-{read_hi:.3g}"
                     + (f": {' and '.join(beyond)}, where the score is the curve carried past its data (towards "
                        "its ceiling or floor), not a measurement" if beyond else ", within them") + ".")
    return lines


def _meek_actor_line(result: dict[str, Any]) -> str:
    """The scenario every number reads: the meek actor's budget in FLOPs and where each factor comes from."""
    m = result["meek_actor"]
    return (f"- Meek actor: ${m['budget_usd']:g} ({m['budget_source']}) x {m['flop_per_dollar']:.3g} FLOP/$ "
            f"({m['flop_per_dollar_source']}: {m['flop_per_dollar_note']}) = C0 {m['c0_flops']:.3g} FLOPs of "
            f"training compute at the start.")


def headline(result: dict[str, Any]) -> list[str]:
    """The answers a reader asks for first: the scenario's budget, peak, closing times, lag, and what
    moves t* most."""
    unc = result["uncertainty"]
    lines = [_meek_actor_line(result), *_gap_lines(result), _inference_line(result), *_law_lines(result), *_extrapolation_lines(result)]
    lines += [f"- Fit warning: {w}." for w in result.get("fit_warnings", [])]
    if not unc["sampled"]:
        lines.append("- No input is sampled in this scenario (point values throughout); see projector=paper-uncertain."
                     + (f" The law's {result['inputs']['law.fit']['value']['bootstrap_note']}."
                        if result["inputs"].get("law.fit", {}).get("value", {}).get("bootstrap_note") else ""))
    return lines


def _table(rows: list[dict[str, Any]]) -> list[str]:
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True).splitlines()


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def markdown_table(result: dict[str, Any], steps_per_year: int) -> str:
    lines = [f"# Projection: {result['scenario']}", "", *headline(result), ""]
    lines += _table([{"year": f"{result['years'][i]:.0f}", "frontier loss": f"{result['frontier_loss'][i]:.4f}",
                      "meek loss": f"{result['meek_loss'][i]:.4f}", "gap (nats)": f"{result['loss_gap'][i]:.4f}",
                      "lag (years)": f"{result['lag_years'][i]:.2f}",
                      "tokens to tell apart": "inf" if result["wald_tokens"][i] is None else f"{result['wald_tokens'][i]:.3g}"}
                     for i in range(0, len(result["years"]), steps_per_year)])
    rates = result["inference"]["measured_rates"]
    if rates:
        lines += ["", "## Measured decode cost per effective parameter (the inference gap's rate)", ""]
        lines += _table([{"hardware": r["hardware"], "variant": r["variant"], "model": r["model"], "family": r["family"],
                          "params": str(r["params"]), "batch": str(r["batch_size"]), "$/token": _g(r["usd_per_token"]),
                          "multiplier": _g(r["multiplier"]),
                          "effective params per $/token": _g(r["effective_params_per_usd"])} for r in rates])
    lines += ["", "## Inputs", ""]
    lines += _table([{"input": k, "value": f"{v['value']:.4g}" if isinstance(v["value"], float)
                      else json.dumps(v["value"], default=str)[:80], "source": v["source"], "note": v["note"]}
                     for k, v in result["inputs"].items()])
    if result["variants"]:
        lines += ["", "## Variants of the fitted family against its laws", "",
                  "multiplier: effective / actual non-embedding parameters; vs baseline: over the same model's "
                  "baseline point's effective size; compute gain: compute the family's "
                  "path needs for that loss / compute the weights cost (distillation included); vs control: "
                  "a KD student's effective size over its continue-ce control's. Optimal: the compute the "
                  "measured compute-optimal law needs for that loss over the compute spent (90% band from its "
                  "bootstrap), and over what it needs for the baseline's loss. A '-' under multiplier: the "
                  "family's size law was refused (see the fit warnings).", ""]
        rows = []
        for v in result["variants"]:
            band = v.get("optimal_compute_gain_band")
            rows.append({"model": v["model"], "variant": v["variant"], "hardware": v["hardware"],
                         "loss": f"{v['heldout_loss_nats']:.4f}", "multiplier": _g(v.get("multiplier")),
                         "vs baseline": _g(v.get("multiplier_vs_baseline")),
                         "compute gain": _g(v.get("effective_compute_gain")),
                         "optimal gain [90%]": _g(v.get("optimal_compute_gain"))
                         + (f" [{_g(band[0])}, {'inf' if band[1] is None else format(band[1], '.3g')}]"
                            if band else ""),
                         "optimal vs baseline": _g(v.get("optimal_compute_vs_baseline")),
                         "vs control": _g(v.get("vs_control")), "weights ratio": _g(v.get("weights_bytes_ratio")),
                         "TPOT ratio": f"{_g(v.get('decode_time_ratio'))} {(v.get('decode_time_ratio_kind') or '')[:1]}"})
        lines += _table(rows)
    return "\n".join(lines) + "\n"
