"""Where an ingest spends its time: every SQL statement of one job, timed.

    .venv/bin/onramp --data-dir /tmp/p taxonomy apply bench/data/taxonomy.yaml
    .venv/bin/python bench/profile_ingest.py /tmp/p bench/data/ftp_dpm_21_<ts>.sync.gz

Wraps the job's DuckDB connection so each ``execute`` is timed, runs the files as one job
(``--reprocess``, so a data directory can be reused), and prints the total and the 25
costliest statements (first 90 characters of each).
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

from onramp.service.ingest import run_job
from onramp.settings import load_settings
from onramp.store.db import connect


class TimedConnection:
    def __init__(self, con, totals: collections.Counter):
        self._con, self._totals = con, totals

    def execute(self, sql, *args):
        start = time.perf_counter()
        result = self._con.execute(sql, *args)
        self._totals[" ".join(sql.split())[:90]] += time.perf_counter() - start
        return result

    def __getattr__(self, name):
        return getattr(self._con, name)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    settings = load_settings(data_dir=argv[0])
    totals: collections.Counter = collections.Counter()
    con = TimedConnection(connect(settings), totals)
    start = time.perf_counter()
    run_job(settings, [Path(p) for p in argv[1:]], con=con, reprocess=True)  # type: ignore[arg-type]
    print(f"total {time.perf_counter() - start:.2f} s")
    for statement, seconds in totals.most_common(25):
        print(f"{seconds:7.2f} {statement}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
