"""cache workloads (being written)."""
