"""The store's connections print nothing on stdout.

DuckDB draws a progress bar on stdout for any statement that runs over 2 s. It landed in
the middle of `onramp ingest --json` output for big files (10M lines), so the JSON no
longer parsed. Every connection `store.db.connect` opens, and the cursors taken from it
(a job's work connection), must have it switched off. Checked in a child process whose
stdout is a pipe, as for a CLI command: under pytest's capture DuckDB leaves the bar off
by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

_CHECK = r"""
import json, sys
from onramp.settings import load_settings
from onramp.store.db import connect

bar = "SELECT current_setting('enable_progress_bar')"
settings = load_settings(data_dir=sys.argv[1])
con = connect(settings)
found = {"connection": con.execute(bar).fetchone()[0], "cursor": con.cursor().execute(bar).fetchone()[0]}
con.close()
ro = connect(settings, read_only=True)
found["read_only"] = ro.execute(bar).fetchone()[0]
ro.close()
print(json.dumps(found))
"""


def test_no_duckdb_progress_bar_on_store_connections_and_their_cursors(tmp_path):
    done = subprocess.run([sys.executable, "-c", _CHECK, str(tmp_path / "data")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"connection": False, "cursor": False, "read_only": False}
