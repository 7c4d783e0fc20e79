"""report.html: one self-contained page, opened in headless Chromium (Debian's package, set up by
scripts/setup.sh) and checked for console errors, rendered plots, hover contents and a non-blank view."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.report import write_report
from harness.run import run_point

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("MEEKBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_dir(models_dir, tmp_path_factory) -> Path:
    """A report over real points (a baseline and a paired variant with a price, on two hardware
    labels), a law fitted by `fit-law` on a synthetic grid, and a projection from it."""
    from harness.config import LawFitConfig, ProjectConfig, ProjectorConfig
    from harness.projector.fit_law import fit_law
    from harness.projector.project import write_projection
    from tests.conftest import compose_config
    from tests.test_isoflop import grid_runs

    res = tmp_path_factory.mktemp("results")
    for label, model, variant in (("machine-a", "tiny-xs", "fp32"), ("machine-a", "tiny-s", "fp32"),
                                  ("machine-a", "tiny-s", "bnb-int8"), ("machine-b", "tiny-s", "fp32")):
        rec = run_point(compose_config("run", [
            f"models_dir={models_dir}", f"results_dir={res}", f"model={model}", f"variant={variant}",
            "bench=quick", "quality.max_bytes=5000", f"hardware.label={label}", "hardware.price_per_hour_usd=0.1",
            "bench.paired_baseline=true"]))
        assert rec.status == "ok", rec.error
    grid = tmp_path_factory.mktemp("grid")
    runs = grid_runs(np.random.default_rng(0))
    (grid / "grid.json").write_text(json.dumps({
        "grid": "synthetic", "text": "synthetic", "text_sha256": "0" * 64, "train_tokens": 0, "flops_rule": "6ND",
        "runs": [{"name": r.name, "budget_flops": r.budget, "flops": r.flops, "params": r.n, "tokens": r.d,
                  "heldout_loss_nats": r.loss, "seed": r.seed, "epochs": 1.0} for r in runs]}))
    fit_law(LawFitConfig(grid_dir=str(grid), out_dir=str(res / "scaling" / "synthetic"), resamples=5))
    cfg = ProjectConfig(projector=ProjectorConfig(name="measured", bootstrap=20), results_dirs=[str(res)],
                        out_dir=str(res / "projections" / "measured"))
    cfg.projector.law.source = "measured"
    cfg.projector.law.measured_path = str(res / "scaling" / "synthetic" / "law.json")
    cfg.projector.force_fits = True  # two budgets extrapolated to a third: the page is drawn whether it passes or not
    write_projection(cfg)
    write_report([res], res / "report")
    return res


def _figures(page: str) -> list[list]:
    """The data of each figure plotly writes into the page: Plotly.newPlot("plot-N", data, layout, config)."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(page, m.end())[0] for m in re.finditer(r'Plotly\.newPlot\(\s*"plot-\d+",\s*', page)]


def test_page_is_self_contained_and_every_point_says_what_it_is(report_dir):
    page = (report_dir / "report" / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page  # nothing fetched at view time
    assert "plotly.js v" in page  # the library is inlined
    hover = json.dumps(_figures(page))
    records = [json.loads(p.read_text()) for p in (report_dir / "runs").glob("*/record.json")]
    assert len(records) == 4
    for r in records:  # every point appears on hover with its run id, model, variant, hardware and engine
        assert r["run_id"] in hover, r["run_id"]
    assert "engine transformers" in hover and "machine-b" in hover
    assert re.search(r"TPOT [0-9.]+ ms \[[0-9.]+, [0-9.]+\]", hover)  # figures come with their intervals
    assert re.search(r"\$ per M tokens [0-9.e-]+ \[[0-9.e-]+, [0-9.e-]+\]", hover)
    (cost,) = [t for f in _figures(page) for t in f if "loss retention" in json.dumps(t) and "error_x" in t]
    assert all(x >= 0 for x in cost["error_x"]["array"] + cost["error_x"]["arrayminus"])
    assert "loss retention" in hover and "KL " in hover
    for title in ("IsoFLOP curves", "residuals", "what moves t* most", "bits per byte against TPOT",
                  "loss retention against cost", "raw samples"):
        assert title in page, title
    assert 'class="dataframe sortable"' in page
    assert "report.html" in (report_dir / "report" / "report.md").read_text()
    # the first screen says what to look at (as report.md and the terminal do): each model's verdict over its
    # one row per engine x variant, before the tables of every point
    verdict = page[page.index("<h2>What to look at first</h2>"):page.index("<h2>Points by status</h2>")]
    assert "<b>tiny-s</b> on machine-a" in verdict and "engine · variant" in verdict and "bnb-int8" in verdict


def test_law_json_carries_the_runs_it_fitted(report_dir):
    law = json.loads((report_dir / "scaling" / "synthetic" / "law.json").read_text())
    assert len(law["fitted_runs"]) == law["runs"] == 20  # 3 budgets x 5 sizes, 2 seeds at the smallest
    assert {"n", "d", "loss", "flops", "budget"} <= set(law["fitted_runs"][0])


@pytest.mark.browser
def test_page_renders_in_headless_chromium(report_dir, tmp_path):
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: scripts/setup.sh installs Debian's `chromium` (as root); or set "
                    "MEEKBENCH_CHROMIUM to a Chromium binary, or deselect with -m 'not browser'")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    path = report_dir / "report" / "report.html"
    expected = len(_figures(path.read_text()))
    assert expected >= 8
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: problems.append(f"network request: {r.url}")
                    if not r.url.startswith(("file:", "data:", "blob:")) else None)
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {expected}",
                                   timeout=30_000)
            # every plot drew marks into a non-empty SVG (points, lines or bars)
            drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => {
                const svg = d.querySelector('.main-svg'), box = svg.getBoundingClientRect();
                return {id: d.id, w: box.width, h: box.height,
                        marks: d.querySelectorAll('.point, .trace path, .bars path, .box path').length}; })""")
            assert len(drawn) == expected
            for d in drawn:
                assert d["w"] > 100 and d["h"] > 100 and d["marks"] > 0, d
            # a header click sorts the points table: text as text, numbers as numbers; a second click reverses
            table = page.locator("h2:text-is('Points') + table")
            for column, key in (("model", str), ("bits/byte", float), ("run id", str)):
                header = table.locator(f"th:text-is('{column}')")
                index = header.evaluate("h => Array.from(h.parentNode.children).indexOf(h)")
                cells = lambda: [key(t) for t in  # noqa: E731
                                 table.locator(f"tbody tr td:nth-child({index + 1})").all_inner_texts()]
                header.click()
                assert cells() == sorted(cells()) and len(cells()) == 4, (column, cells())
                header.click()
                assert cells() == sorted(cells(), reverse=True), (column, cells())
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    assert not problems, problems
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # not a blank page
