"""The exceptions a user meets as one sentence: bad input (exit 2) and a results folder that failed (exit 1).

Kept free of heavy imports: the CLI's error wrapper needs them before any command runs.
"""


class UserError(ValueError):
    """A user-caused error: one sentence naming the input and the fix; the CLI exits 2."""


class StoreError(Exception):
    """The results folder could not be written mid-run (disk full, turned read-only): exit 1."""
