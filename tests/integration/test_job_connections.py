"""Jobs on their own connections to one open database, as `onramp serve` runs them.

The service opens a connection per job and closes it when the job ends, while other
connections (the next job, the HTTP server) keep the database open. Whatever one job leaves
in the database's shared catalog must stay usable by the next job after the first
connection is gone. It did not: the reject-reason function registered by the first job
died with its connection and the second job's call crashed the process (SIGSEGV in CI).
The jobs run in a child process so that such a crash fails this test instead of pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_JOBS = r"""
import gzip, json, sys
from pathlib import Path
from onramp.service.ingest import run_job
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy

data, drop = Path(sys.argv[1]), Path(sys.argv[2])
settings = load_settings(data_dir=data)
keeper = connect(settings)  # keeps the database open across jobs, like the HTTP server
apply_taxonomy(keeper, load_taxonomy(sys.argv[3])[0])
results = []
for i in range(3):
    f = drop / f"ftp_dpm_21_170000000{i}.sync"
    # Format Errors are explained by the reference parser, called from SQL.
    f.write_text(f"CK{i}\td_sid=4\nCK{i}x\td_sid=4,,=\nno tab here\n")
    con = connect(settings)  # one connection per job, closed when the job ends
    try:
        job = run_job(settings, [f], con=con)
    finally:
        con.close()
    (receipt,) = job.receipts
    with gzip.open(data / "receipts" / receipt.receipt_id / "rejects.tsv.gz", "rt") as rows:
        results.append([line.rstrip("\n").split("\t")[1:4] for line in rows][1:])
keeper.close()
print(json.dumps(results))
"""

TAXONOMY = """
partners:
  - {pid: 7, name: acme}
data_sources:
  - {dpid: 21, owner: 7, name: cookies, id_type: cookie, inbound_id_type: customer_id}
traits:
  - {sid: 4, name: d, data_source: 21, type: onboarded}
"""


def test_each_job_on_its_own_connection_explains_its_format_errors(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    child = subprocess.run([sys.executable, "-c", _JOBS, str(tmp_path / "data"), str(drop), TAXONOMY],
                           capture_output=True, text=True, timeout=300, check=False)
    assert child.returncode == 0, f"jobs crashed (exit {child.returncode}):\n{child.stderr[-3000:]}"
    results = json.loads(child.stdout.strip().splitlines()[-1])
    # Every job's reject file carries the reference parser's item-level reasons.
    for rows in results:
        assert rows[1:] == [["2", "format_error", "item 2 '=': missing key"],
                            ["3", "format_error", "no TAB between the user ID and the items"]]
    assert len(results) == 3
