"""The scaling-gap projector: laws, fits, gap model, scenarios. Importable without torch."""
