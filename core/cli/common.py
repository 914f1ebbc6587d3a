"""What every verb of the command line shares: exit codes, rounding, JSON lines on stdout and the
progress line on stderr."""

from __future__ import annotations

import argparse
import json
import sys

# The one rule (docs/cli.md#exit-status): bad input of any kind, a file among others included, exits 2.
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
BAR_WIDTH = 24
LINE_WIDTH = 80
PROGRESS_INTERVAL_S = 0.2
PERCENT_DECIMALS = 2  # accuracies, in percent, rounded for people
FRACTION_DECIMALS = 4  # probabilities and per-class scores: two decimals of a percent
LOSS_DECIMALS = 4


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def bar(fraction: float) -> str:
    filled = int(fraction * BAR_WIDTH)
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


def redraw(line: str, end: str = "") -> None:
    print(f"\r{line:<{LINE_WIDTH}}", end=end, file=sys.stderr, flush=True)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; those that depend on --arch (None here) say so in their help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def add_download_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-download", dest="download", action="store_false", help="never fetch MNIST from the internet"
    )
