"""Results: the per-query Parquet store and the cross-seed analysis of it."""

from latentnas.results.store import SCHEMA_VERSION, read_results, write_trial

__all__ = ["SCHEMA_VERSION", "read_results", "write_trial"]
