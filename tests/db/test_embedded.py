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
