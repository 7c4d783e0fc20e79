#!/usr/bin/env python
"""Print the support matrix (Markdown: engine x variant by device) from the records in results
directories. Each cell says what actually happened when the variant ran there: `runs` (with the
weights ratio to the same model's baseline), or the record's status and reason. docs/measured.md
carries it for the demo's records (scripts/measured_page.py):

    python scripts/support_matrix.py results/demo [more results dirs...] [--baseline fp32]
"""
from __future__ import annotations

import argparse

from harness.report.support import support_matrix
from harness.results.store import load_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--baseline", default="fp32")
    args = parser.parse_args()
    print(support_matrix(load_records(args.dirs).records, args.baseline))


if __name__ == "__main__":
    main()
