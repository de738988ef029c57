"""command workloads (being written)."""
