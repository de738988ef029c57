"""database workloads (being written)."""
