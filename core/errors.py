"""Turning exceptions into one-line messages for users."""

MAX_REASON_CHARS = 200


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), shortened."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:MAX_REASON_CHARS]
