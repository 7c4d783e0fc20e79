#!/usr/bin/env python
"""The first screen of a report.html as a reader's browser shows it (headless Chromium, 1280 x 900,
after every plot has drawn), for docs/report.md:

    python scripts/screenshot_report.py results/demo/report/report.html docs/report-html.png

Uses the system Chromium through playwright (MEEKBENCH_BROWSER=1 bash scripts/setup.sh installs
Debian's; MEEKBENCH_CHROMIUM names another), as tests/test_report_html.py does.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    if not args.html.is_file():
        raise SystemExit(f"{args.html} does not exist; valid: a report.html that `meekbench report` wrote")
    chromium = os.environ.get("MEEKBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("no chromium on PATH: MEEKBENCH_BROWSER=1 bash scripts/setup.sh installs Debian's")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(args.html.resolve().as_uri(), wait_until="load")
            page.wait_for_function("Array.from(document.querySelectorAll('.js-plotly-plot'))"
                                   ".every(d => d.querySelector('.main-svg'))", timeout=60_000)
            page.screenshot(path=str(args.png), full_page=False)
        finally:
            browser.close()
    print(f"{args.png}: the first 1280 x 900 of {args.html}")


if __name__ == "__main__":
    main()
