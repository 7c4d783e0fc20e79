"""Writes harness/projector/data/extrapolation_calibration.json: approach 3 fitted on the published
runs below each cut and judged on the runs above it (harness/projector/calibration.py), and prints
the coverage table docs/scaling-law.md quotes. About 8 minutes on 2 cores at 100 resamples.

    python scripts/calibrate_extrapolation.py [resamples]
"""
import sys
import time

from harness.projector import calibration as cal

start = time.time()
resamples = int(sys.argv[1]) if len(sys.argv) > 1 else 100
c = cal.calibrate(cal.published_runs(), [10 ** x for x in cal.CUTS_LOG10], resamples=resamples)
cal.write(c)
print(f"inflation {c.inflation:.2f}; measured to {c.measured_to_decades:.2f} decades; {time.time() - start:.0f} s")
print("| cut (FLOPs) | runs fitted | span (decades) | exponent [90%] | ln(exp / full) | held-out median decades beyond "
      "| held-out runs | loss ln error mean | RMS | sigma per decade |")
print("|---|---|---|---|---|---|---|---|---|---|")
for t in c.truncations:
    print(f"| {t['cut_flops']:.3g} | {t['fitted_runs']} | {t['span_decades']:.2f} | {t['exponent']:.4f} "
          f"[{t['exponent_band'][0]:.4f}, {t['exponent_band'][1]:.4f}] | {t['log_exponent_error']:+.3f} | "
          f"{t['distance_decades']:.2f} | {t['held_out_runs']} | {t['loss_log_error_mean']:+.4f} | "
          f"{t['loss_log_error_rms']:.4f} | {c.rate(t['span_decades']):.3f} |")
print(f"\n| decades beyond the fitted runs | pairs | coverage, bootstrap alone | coverage, with the systematic term |")
print("|---|---|---|---|")
for a, b in zip(c.coverage_bootstrap_only["runs_by_distance"], c.coverage_calibrated["runs_by_distance"]):
    fmt = lambda x: "-" if x is None else f"{x:.0%}"
    print(f"| {a['decades'][0]:g}-{a['decades'][1]:g} | {a['pairs']} | {fmt(a['coverage'])} | {fmt(b['coverage'])} |")
print(f"| exponent (all cuts) | {len(c.truncations)} | {c.coverage_bootstrap_only['exponent']:.0%} | "
      f"{c.coverage_calibrated['exponent']:.0%} |")
