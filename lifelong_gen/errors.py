"""The one exception type for user-facing problems (bad input, missing data).

The CLI turns it into a single line on stderr and exit code 2; library users
catch it like any ValueError. Torch-free.
"""


class LgenError(ValueError):
    """A problem the user can fix: the message is one line and names it."""
