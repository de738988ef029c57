"""storage workloads (being written)."""
