"""The catalog: providers, models, prices and fallback chains, and the per-process config snapshots."""
