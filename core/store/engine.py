"""Which database the store is, a connection to it, and its schema brought up to date.

The URL comes from, in order: the caller (a `--db PATH` or a URL), $MNIST_STORE_URL,
$MNIST_CORRECTIONS_DB (a SQLite file, as before the store), Streamlit's secrets
(`[connections.store] url` in the app's SECRETS_FILE), and else `sqlite:///data/store.sqlite`.
A password is never printed: messages name the store by `describe`.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from core.errors import UserError, reason
from core.store.schema import examples

STORE_URL_ENV = "MNIST_STORE_URL"
CORRECTIONS_DB_ENV = "MNIST_CORRECTIONS_DB"  # a SQLite file: another way to write sqlite:///PATH
DEFAULT_SQLITE = Path("data") / "store.sqlite"
SECRETS_FILE = Path(".streamlit") / "secrets.toml"
CONNECT_TIMEOUT_S = 5  # a PostgreSQL server that does not answer: no page waits longer
SQLITE_BUSY_S = 30  # how long a SQLite writer waits for another's transaction
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 20261205  # the PostgreSQL advisory lock every server of this app takes to migrate
IMMEDIATE = "immediate"  # execution option: a SQLite write takes the write lock at BEGIN
CHECK_URL = f"check the server and the URL (${STORE_URL_ENV} or [connections.store] url in {SECRETS_FILE})"
CHECK_GIVEN_URL = "check the server and the URL given (on the command line: --db)"


class StoreError(UserError):
    """The store cannot be used (StoreUnavailable) or an input is refused."""


class StoreUnavailable(StoreError):
    """The store cannot be used: unreachable, damaged, misconfigured or of a newer app. Its message
    names the store and how to fix it, for the app's owners; others are told only that it is down."""


def store_url(where: str | os.PathLike | None = None) -> str:
    """The store's SQLAlchemy URL: `where` (a URL, or a SQLite file's path), else the settings."""
    if where:
        return as_url(where)
    for candidate in (os.environ.get(STORE_URL_ENV), os.environ.get(CORRECTIONS_DB_ENV)):
        if candidate:  # the environment wins over the secrets file
            return as_url(candidate)
    if secret := _secrets_url():
        return as_url(secret)
    return as_url(DEFAULT_SQLITE)


def as_url(where: str | os.PathLike) -> str:
    text = str(where)
    return text if "://" in text else f"sqlite:///{Path(text).absolute()}"


def _secrets_url() -> str | None:
    """The app's secrets convention: `[connections.store] url = "..."` in SECRETS_FILE."""
    if not SECRETS_FILE.is_file():
        return None
    try:
        secrets = tomllib.loads(SECRETS_FILE.read_text())
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise StoreUnavailable(f"{SECRETS_FILE} cannot be read: {reason(exc)}") from exc
    return secrets.get("connections", {}).get("store", {}).get("url")


def embedded(url: str) -> bool:
    """A SQLite file on this machine's disk: on Community Cloud, lost at every restart."""
    return url.startswith("sqlite:")


def describe(url: str) -> str:
    """The store for people: a SQLite file's path, or the URL with its password hidden."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "a store URL that is not a database URL"
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return parsed.render_as_string(hide_password=True)


_engines: dict[str, Engine] = {}
_ready: set[str] = set()  # URLs whose schema is up to date in this process
_lock = threading.Lock()


def _new_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except ArgumentError as exc:
        raise StoreUnavailable(f"{describe(url)}: use sqlite:///PATH or postgresql+psycopg://...") from exc
    if backend == "sqlite":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # One connection per call, as Streamlit serves sessions from many threads.
        engine = create_engine(
            url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_S, "check_same_thread": False}
        )
        event.listen(engine, "connect", _sqlite_connected)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        try:
            return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        except NoSuchModuleError as exc:
            raise StoreUnavailable(f"{describe(url)}: unknown driver; use postgresql+psycopg://...") from exc
    raise StoreUnavailable(f"{describe(url)}: the store is SQLite or PostgreSQL")


def _sqlite_connected(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (_sqlite_begin)
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def _sqlite_begin(connection: Connection) -> None:
    """Writes take the write lock at once (two upgrades cannot deadlock); reads never wait for it."""
    immediate = connection.get_execution_options().get(IMMEDIATE)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _engine(url: str, settings: bool) -> Engine:
    """The engine for `url`, its schema up to date; `settings`: the URL came from the settings, not
    from the caller (then an older app's corrections are moved in)."""
    with _lock:
        if url not in _engines:
            _engines[url] = _new_engine(url)
        engine = _engines[url]
        if url not in _ready:
            with _failures_explained(url, given=not settings):
                _migrate(engine, url)
                if settings and not os.environ.get(CORRECTIONS_DB_ENV):
                    from core.store.legacy import move_in_once  # it uses this module's connections

                    move_in_once(engine, url)
            _ready.add(url)
    return engine


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _migrate(engine: Engine, url: str) -> None:
    """Bring the schema to the newest revision; a store of a newer app is refused, untouched."""
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    with engine.connect() as connection:  # the usual case, a read: no write lock taken
        current = MigrationContext.configure(connection).get_current_revision()
    if current == scripts.get_current_head():
        return
    if current is not None and current not in {script.revision for script in scripts.walk_revisions()}:
        newer = f"{describe(url)} was written by a newer version of this app (schema {current})"
        raise StoreUnavailable(newer)
    with engine.connect().execution_options(**{IMMEDIATE: True}) as connection, connection.begin():
        if connection.dialect.name == "postgresql":  # two servers starting at once upgrade in turn
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        command.upgrade(_alembic_config(connection), "head")


@contextmanager
def _failures_explained(url: str, given: bool) -> Iterator[None]:
    """Database errors as one StoreError line; integrity errors go to the caller, which knows why."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        raise StoreUnavailable(_why(url, exc, given)) from exc


def _why(url: str, exc: DBAPIError, given: bool) -> str:
    """The failure in words, and where to fix it: the URL the caller gave, or the settings'."""
    what = reason(exc.orig) if exc.orig is not None else reason(exc)
    damaged = any(sign in what for sign in ("not a database", "malformed", "no such table"))
    if make_url(url).get_backend_name() == "sqlite" and damaged:
        return (
            f"{describe(url)} is not a usable store ({what}); it was left as it is: move it away "
            f"or set ${STORE_URL_ENV} to another store"
        )
    return f"cannot use the store {describe(url)}: {what}; {CHECK_GIVEN_URL if given else CHECK_URL}"


@contextmanager
def read(where: str | os.PathLike | None = None) -> Iterator[Connection]:
    """A connection for reading (no write lock)."""
    url = store_url(where)
    engine = _engine(url, settings=not where)
    with _failures_explained(url, given=bool(where)), engine.connect() as connection:
        yield connection


@contextmanager
def write(where: str | os.PathLike | None = None) -> Iterator[Connection]:
    """One transaction: all of it is stored, or none."""
    url = store_url(where)
    engine = _engine(url, settings=not where)
    with (
        _failures_explained(url, given=bool(where)),
        engine.connect() as connection,
        connection.execution_options(**{IMMEDIATE: True}).begin(),
    ):
        yield connection


def insert_example(connection: Connection, row: dict) -> tuple[int, bool]:
    """Add an examples row unless this image already has this label: (its id, whether it is new).
    The one find-or-insert of examples (corrections, imports, copies and moving in all use it)."""
    same = (examples.c.image_sha256 == row["image_sha256"]) & (examples.c.label == row["label"])
    found = connection.execute(select(examples.c.id).where(same)).scalar()
    if found is not None:
        return found, False
    return connection.execute(examples.insert().values(row).returning(examples.c.id)).scalar_one(), True
