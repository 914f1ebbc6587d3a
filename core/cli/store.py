"""The verbs of the store of what users teach: corrections (add, list, export, import) and store copy.
The command line runs on the server: it acts as the owner (core.access.LOCAL)."""

from __future__ import annotations

import argparse

from core.access import LOCAL
from core.cli.common import EXIT_BAD_INPUT, emit
from core.errors import UserError, reason


def cmd_corrections(args: argparse.Namespace) -> int:
    return args.corrections_run(args)


def cmd_corrections_add(args: argparse.Namespace) -> int:
    from core.corrections import add_example, example_from_image
    from core.images import ImageError

    failed = False
    for file in args.files:
        try:
            with open(file, "rb") as f:
                data = f.read()
            example_id, _ = add_example(example_from_image(data, args.label, "cli"), args.db, by=LOCAL)
            emit({"file": file, "id": example_id})
        except (OSError, ImageError) as exc:
            failed = True
            emit({"file": file, "error": reason(exc)})
    return EXIT_BAD_INPUT if failed else 0


def cmd_corrections_list(args: argparse.Namespace) -> int:
    from core.corrections import list_examples

    for e in list_examples(args.db, by=LOCAL):
        emit({"id": e.id, "label": e.label, "predicted": e.predicted, "source": e.source,
               "created_at": e.created_at, "author": e.author})  # fmt: skip
    return 0


def cmd_corrections_export(args: argparse.Namespace) -> int:
    from core.corrections_zip import export_zip

    emit(export_zip(args.out, args.db, by=LOCAL))
    return 0


def cmd_corrections_import(args: argparse.Namespace) -> int:
    from core.corrections_zip import import_zip

    try:
        with open(args.zip, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"cannot read {args.zip}: {reason(exc)}") from exc
    emit(import_zip(data, args.db, by=LOCAL))
    return 0


def cmd_store_copy(args: argparse.Namespace) -> int:
    from core.corrections import copy_store

    emit(copy_store(args.source, args.target, by=LOCAL))
    return 0


def add_corrections_verb(verbs) -> None:
    p = verbs.add_parser("corrections", help="the store of digits users labelled: add, list, export, import")
    actions = p.add_subparsers(dest="action", metavar="{add,list,export,import}", required=True)
    db_help = (
        "the store: a SQLite file or a database URL (default: $MNIST_STORE_URL, else $MNIST_CORRECTIONS_DB, "
        "else [connections.store] url in .streamlit/secrets.toml, else data/store.sqlite)"
    )
    a = actions.add_parser("add", help="store image files with their true digit, one JSON line per file")
    a.add_argument("files", nargs="+", metavar="FILE")
    a.add_argument(
        "--label", type=int, choices=range(10), required=True, metavar="D", help="their digit, 0-9"
    )
    a.set_defaults(corrections_run=cmd_corrections_add)
    a = actions.add_parser("list", help="one JSON line per stored example")
    a.set_defaults(corrections_run=cmd_corrections_list)
    a = actions.add_parser("export", help="write every example and labels.csv to a zip")
    a.add_argument("out", metavar="OUT.zip")
    a.set_defaults(corrections_run=cmd_corrections_export)
    a = actions.add_parser("import", help="merge an exported zip; duplicates are skipped")
    a.add_argument("zip", metavar="IN.zip")
    a.set_defaults(corrections_run=cmd_corrections_import)
    for action in actions.choices.values():
        action.add_argument("--db", help=db_help)
    p.set_defaults(run=cmd_corrections)


def add_store_verb(verbs) -> None:
    p = verbs.add_parser("store", help="the store of what users teach: copy one into another")
    actions = p.add_subparsers(dest="action", metavar="{copy}", required=True)
    a = actions.add_parser("copy", help="copy every example into another store; prints counts and hashes")
    a.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="a database URL or .sqlite file"
    )
    a.add_argument("--to", dest="target", required=True, metavar="URL", help="a database URL or .sqlite file")
    p.set_defaults(run=cmd_store_copy)
