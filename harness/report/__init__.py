"""The report stage: records in, views out. ``meekbench report`` (markdown.py: report.md, the
flat table, the plots), report.html (html.py lays out the figures of figures.py), the variant
scorecard (scorecard.py), ``meekbench summary`` (summary.py) and the Pareto fronts they share
(pareto.py). Every comparison between records comes from harness/results/comparison.py."""
from harness.report.markdown import flat_table, write_report  # noqa: F401
