"""The one exception type for user-facing problems (bad input, missing data).

The CLI turns it into a single line on stderr and exit code 2; library users
catch it like any ValueError. Torch-free.
"""


class LgenError(ValueError):
    """A problem the user can fix: the message is one line and names it."""


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint.

    The CLI prints `message` as one line and exits with 128 + the signal number
    (130 for Ctrl-C, 143 for SIGTERM), the shell's convention for a signalled stop.
    """

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def one_line(error: BaseException, limit: int = 200, *, first_line: bool = False) -> str:
    """An exception's text on one line (whitespace collapsed, cut at `limit`), for LgenError messages.

    Args:
        first_line: keep only its first non-empty line (huggingface_hub, torch and the ONNX
            exporter put a summary there and request ids, URLs or tracebacks below it).
    """
    text = str(error)
    if first_line:
        text = next((line for line in text.splitlines() if line.strip()), "")
    text = " ".join(text.split())
    return text[:limit] if text else type(error).__name__
