"""What to look at first: for each model on each machine, read from its scorecard, the engine x
variant that decodes cheapest, and the cheapest one whose held-out loss keeps the first gate
(judge.gates[0], loss retention's whole interval at or above it), each with its fidelity cost and
the price its dollars assume, then the card's one-row-per-variant table (what a reader compares
engines x variants by). The report's first section and the end of `meekbench report`."""
from __future__ import annotations

from harness.report.scorecard import Scorecard, glance_markdown


def _usd(p: dict) -> str:
    band = f" [{p['usd_lo']:.3g}, {p['usd_hi']:.3g}]" if p.get("usd_lo") is not None else ""
    return f"${p['usd']:.3g}{band} per million tokens"


def _fidelity(p: dict) -> str:
    if p.get("kl") is None:
        return "the reference itself"
    return f"KL {p['kl']:.3g} nats per token, loss retention {p['retention']:.4f}"


def _not_measurably_cheaper(a: dict, b: dict) -> bool:
    """Whether ``a`` is not measurably cheaper than the reference ``b``: its paired speed-up's interval
    reaches 1 (the comparison free of drift between points), or, unpaired, the two dollar intervals
    overlap (no interval: the point values are compared)."""
    if a.get("speedup_lo") is not None:
        return a["speedup_lo"] <= 1
    return (a.get("usd_hi") or a["usd"]) >= (b.get("usd_lo") or b["usd"])


def verdict_lines(cards: list[Scorecard], gate: float) -> list[str]:
    lines = []
    for card in cards:
        priced = [p for p in card.points if p.get("usd") is not None]
        if len(priced) < 2:
            continue
        cheapest = min(priced, key=lambda p: p["usd"])
        kept = [p for p in priced if (p.get("retention_lo") or 0) >= gate]
        reference = next((p for p in priced if p.get("kl") is None), None)  # the baseline's point carries no KL
        if reference is not None and (cheapest is reference or _not_measurably_cheaper(cheapest, reference)):
            lines += [f"- **{card.model}** on {card.hardware}: no engine x variant decodes measurably cheaper than "
                      f"the reference **{reference['variant']}** at {_usd(reference)}"
                      + ("" if cheapest is reference else f" (the lowest, **{cheapest['variant']}** at {_usd(cheapest)}, "
                         + ("its paired speed-up's interval reaching 1x)" if cheapest.get("speedup_lo") is not None
                            else "its interval overlapping the reference's)"))
                      + f". {card.prices}", "", *glance_markdown(card)]
            continue
        line = (f"- **{card.model}** on {card.hardware}: cheapest **{cheapest['variant']}** at {_usd(cheapest)} "
                f"({_fidelity(cheapest)})")
        if kept and min(kept, key=lambda p: p["usd"]) is not cheapest:
            best = min(kept, key=lambda p: p["usd"])
            line += f"; cheapest keeping loss retention >= {gate:g}: **{best['variant']}** at {_usd(best)} ({_fidelity(best)})"
        elif not kept:
            line += f"; none keeps loss retention >= {gate:g} on its whole interval"
        lines += [f"{line}. {card.prices}", "", *glance_markdown(card)]
    return lines
