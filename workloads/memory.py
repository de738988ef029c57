"""memory workloads (being written)."""
