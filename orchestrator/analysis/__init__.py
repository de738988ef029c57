"""Pure analysis: statistics, trial records, flags, scaling fits, comparisons, targets (no Ray, no formatting)."""
