"""The report's first section and the end of `meekbench report` (issue 46 item 3): what to look at
first, read from the scorecards' points."""
import pandas as pd

from harness.report.scorecard import Scorecard
from harness.report.verdict import verdict_lines


def _card(points):
    return Scorecard("cpu-x", "smollm2", [], pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), points,
                     "Priced at $0.1/h (a list price): an assumption, not a measurement.")


def test_the_verdict_names_the_cheapest_and_the_cheapest_that_keeps_the_loss():
    ref = {"variant": "fp32", "kl": None, "retention": 1.0, "retention_lo": 1.0, "usd": 0.57, "usd_lo": 0.55,
           "usd_hi": 0.6}
    int4 = {"variant": "ort-int4 · onnxruntime", "kl": 0.24, "retention": 0.90, "retention_lo": 0.89, "usd": 0.2,
            "usd_lo": 0.19, "usd_hi": 0.23}
    q8 = {"variant": "gguf-q8_0 · llamacpp", "kl": 0.002, "retention": 0.999, "retention_lo": 0.995, "usd": 0.3,
          "usd_lo": 0.28, "usd_hi": 0.33}
    line, *rest = verdict_lines([_card([ref, int4, q8])], 0.99)
    assert rest == [""]  # no table: the card has no rows
    assert "cheapest **ort-int4 · onnxruntime** at $0.2 [0.19, 0.23]" in line and "KL 0.24 nats" in line
    assert "keeping loss retention >= 0.99: **gguf-q8_0 · llamacpp** at $0.3" in line
    assert line.endswith("an assumption, not a measurement.")
    line, *_ = verdict_lines([_card([ref, dict(int4, usd=0.9)])], 0.99)
    assert "no engine x variant decodes measurably cheaper than the reference **fp32**" in line
    # the lowest point value, inside the reference's interval, is not called cheaper (the demo's distil-kd:
    # the same architecture as tiny-xs fp32, $0.0208 against $0.0208)
    line, *_ = verdict_lines([_card([ref, dict(int4, usd=0.56, usd_lo=0.54, usd_hi=0.58)])], 0.99)
    assert "no engine x variant decodes measurably cheaper" in line and "the lowest, **ort-int4" in line
    # paired, the speed-up's interval decides (the demo's distil-kd: $0.0208 [0.0205, 0.0209] against fp32's
    # [0.0211, 0.0218] unpaired, but 1.00x [1.00, 1.01] paired: the same architecture, not cheaper)
    line, *_ = verdict_lines([_card([ref, dict(int4, usd=0.5, usd_lo=0.49, usd_hi=0.51, speedup_lo=0.998)])], 0.99)
    assert "no engine x variant decodes measurably cheaper" in line
    line, *_ = verdict_lines([_card([ref, dict(int4, speedup_lo=1.02)])], 0.99)
    assert "cheapest **ort-int4 · onnxruntime**" in line
    assert verdict_lines([_card([ref])], 0.99) == []  # nothing to compare
