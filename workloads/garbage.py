"""garbage workloads (being written)."""
