"""The one exception type for mistakes a user can fix (bad option, parameter or plan)."""


class UserError(ValueError):
    """A user-caused error: one sentence naming the input and the fix; the CLI exits 2."""
