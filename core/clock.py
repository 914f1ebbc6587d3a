"""The one clock: times are recorded in UTC, to the second, as ISO 8601 text, and shown in one way."""

from __future__ import annotations

from datetime import UTC, datetime

MINUTE = "%Y-%m-%d %H:%M"  # tables: '2026-11-25 01:51'
SHORT = "%d %b %H:%M UTC"  # the sidebar: '25 Nov 01:51 UTC'
STAMP = "%Y%m%d-%H%M%S"  # in file names: '20261125-015107'


def now_iso() -> str:
    """Now, in UTC: '2026-11-25T01:51:07+00:00'."""
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def stamp() -> str:
    """Now, local time, for a fresh file name."""
    return f"{datetime.now():{STAMP}}"


def shown(recorded: str, pattern: str = MINUTE, unknown: str = "") -> str:
    """A recorded ISO time in `pattern` (as recorded: UTC); `unknown` when it is not a time."""
    try:
        return datetime.fromisoformat(recorded).strftime(pattern)
    except ValueError:
        return unknown
