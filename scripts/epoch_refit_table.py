"""Besiroglu et al. 2024's data as a `meekbench fit-law table=` CSV.

Input: data/svg_extracted_data.csv of github.com/epoch-research/analyzing-chinchilla (the 245 runs
they read off Hoffmann et al.'s Figure 4). As they did (data_analysis.ipynb), the 5 runs with the
highest loss are dropped. Output columns: name, N, C, loss (D = C / 6N).

    python scripts/epoch_refit_table.py svg_extracted_data.csv epoch_runs.csv
    meekbench fit-law table=epoch_runs.csv grid_name=epoch-refit resamples=400
"""
import sys

import pandas as pd

DROPPED_HIGHEST = 5  # Besiroglu et al.: nr_of_models_excluded = 5

src, out = sys.argv[1], sys.argv[2]
df = pd.read_csv(src)[["Model Size", "Training FLOP", "loss"]].dropna()
cut = sorted(df["loss"])[-DROPPED_HIGHEST]
df = df[df["loss"] < cut].rename(columns={"Model Size": "N", "Training FLOP": "C"})
df.insert(0, "name", [f"chinchilla-fig4-{i}" for i in df.index])
df.to_csv(out, index=False)
print(f"{len(df)} runs written to {out}")
