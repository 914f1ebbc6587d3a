"""Errors a user can fix, and turning exceptions into one-line messages."""

MAX_REASON_CHARS = 200


class UserError(Exception):
    """Bad input or a missing resource that the user can fix: shown as one line, never a traceback."""


class WriteError(UserError, OSError):
    """A file could not be written (no such folder, no permission, a full disk)."""


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), shortened."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:MAX_REASON_CHARS]
