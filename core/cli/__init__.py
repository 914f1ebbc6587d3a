"""Command line: python -m core train|evaluate|predict|models|export|corrections|store.

Only the verb that runs imports torch: `--help` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from core.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from core.cli.store import add_corrections_verb, add_store_verb
from core.cli.training import add_train_verb
from core.cli.using import add_model_verbs
from core.errors import UserError

VERBS = ("train", "evaluate", "predict", "models", "export", "corrections", "store")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one `error:` line (argparse would print the usage and a second line)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="Train, evaluate and use MNIST models.")
    verbs = parser.add_subparsers(dest="verb", metavar="{" + ",".join(VERBS) + "}")
    add_train_verb(verbs)

    add_model_verbs(verbs)
    add_corrections_verb(verbs)
    add_store_verb(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.error(f"choose a verb: {', '.join(VERBS)}")
    try:
        from core.threads import use_cpu_budget

        use_cpu_budget()
        return args.run(args)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C before `train` set its handler, or in another verb
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
