"""A throwaway PostgreSQL server, for the store's tests and its benchmark.

Debian's package (.ci/run installs it), on a loopback port, its data and socket in a temporary
folder. PostgreSQL refuses to run as root, so as root (CI) it runs as the postgres user the package
creates. Local connections are trusted; over TCP a password is asked, so that tests can show it is
never printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .app_latency import free_port

POSTGRES_BINS = Path("/usr/lib/postgresql")
POSTGRES_USER = "postgres"
POSTGRES_PASSWORD = "s3cret-pw"  # over TCP a password is asked, so tests can show it is never printed
POSTGRES_START_S = 60


@dataclass
class Postgres:
    port: int
    bin: Path
    folder: Path
    log: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = POSTGRES_USER, password: str = POSTGRES_PASSWORD) -> str:
        return f"postgresql+psycopg://{POSTGRES_USER}:{password}@127.0.0.1:{self.port}/{database}"

    def admin(self):
        import psycopg

        credentials = f"user={POSTGRES_USER} password={POSTGRES_PASSWORD}"
        return psycopg.connect(f"host=127.0.0.1 port={self.port} {credentials}", autocommit=True)

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["su", POSTGRES_USER, "-c", " ".join(map(shlex.quote, command))]
        return subprocess.run(command, capture_output=True, text=True, timeout=POSTGRES_START_S)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        started = self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")
        assert started.returncode == 0, started.stderr + self.log.read_text()

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "stop")


class PostgresMissing(RuntimeError):
    """Debian's postgresql package is not installed."""


def start_server() -> Postgres:
    """A new PostgreSQL server in a temporary folder, running (stop() it, then remove its folder)."""
    found = sorted(POSTGRES_BINS.glob("*/bin/pg_ctl"))
    if not found:
        raise PostgresMissing(f"no PostgreSQL server under {POSTGRES_BINS}")
    folder = Path(tempfile.mkdtemp(prefix="mnist-postgres-"))
    (folder / "password").write_text(POSTGRES_PASSWORD)
    if os.geteuid() == 0:
        for path in (folder, folder / "password"):
            shutil.chown(path, POSTGRES_USER, POSTGRES_USER)
    server = Postgres(free_port(), found[-1].parent, folder, folder / "server.log")
    init = server.run(
        "initdb", "-D", str(server.data), "-U", POSTGRES_USER, "-E", "UTF8", "--auth-local=trust",
        "--auth-host=scram-sha-256", f"--pwfile={folder / 'password'}",
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    server.start()
    return server
