#!/usr/bin/env python
"""Does a point's TPOT interval describe what a re-run reproduces? Runs the same point twice in
a row, in separate processes as a user would (force=true), and checks whether the second run's
median TPOT falls inside the first run's interval; repeats that ``--tries`` times.

    python scripts/interval_check.py --tries 5 [meekbench overrides, e.g. model=tiny-l models_dir=models]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

from harness.results.store import iter_records


def run_once(results: str, overrides: list[str]):
    subprocess.run([sys.executable, "-m", "harness", "run", f"results_dir={results}", "force=true", *overrides],
                   check=True, capture_output=True, text=True)
    (record,) = list(iter_records([results]))
    return record.latency.tpot_ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tries", type=int, default=5)
    args, overrides = ap.parse_known_args()
    inside = 0
    with tempfile.TemporaryDirectory() as results:
        for i in range(args.tries):
            first, again = run_once(results, overrides), run_once(results, overrides)
            hit = first.ci_low <= again.median <= first.ci_high
            inside += hit
            print(f"try {i + 1}: TPOT {first.median:.4f} ms [{first.ci_low:.4f}, {first.ci_high:.4f}] "
                  f"({first.n} requests); re-run {again.median:.4f} ms -> {'inside' if hit else 'outside'}")
    print(f"{inside} of {args.tries} re-runs inside the first run's interval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
