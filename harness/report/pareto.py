"""Pareto fronts of a table of points: the report's (quality against a cost) and the scorecard's
(retention against dollars)."""
from __future__ import annotations

import math

import pandas as pd


def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats on both x and y (lower is better on both)."""
    d = df.dropna(subset=[x, y]).sort_values([x, y])
    front, best = [], math.inf
    for _, row in d.iterrows():
        if row[y] < best:
            front.append(row)
            best = row[y]
    return pd.DataFrame(front)


def retention_front(points: pd.DataFrame) -> pd.DataFrame:
    """Cheapest first; a point is on the front when no cheaper point retains as much."""
    front, best = [], -float("inf")
    for _, row in points.sort_values(["usd", "retention"], ascending=[True, False]).iterrows():
        if row["retention"] > best:
            front.append(row)
            best = row["retention"]
    return pd.DataFrame(front)
