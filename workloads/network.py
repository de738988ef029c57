"""network workloads (being written)."""
