"""Where an ingest spends its time: every SQL statement of one job, timed.

    .venv/bin/onramp --data-dir /tmp/p taxonomy apply bench/data/taxonomy.yaml
    .venv/bin/python bench/profile_ingest.py /tmp/p bench/data/ftp_dpm_21_<ts>.sync.gz

Wraps the job's DuckDB connection so each ``execute`` is timed, runs the files as one job
(``--reprocess``, so a data directory can be reused), and prints the total, the 25
costliest statements (first 90 characters of each) and the statements during which the
process's peak RSS grew.
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

from onramp.service.ingest import run_job
from onramp.settings import load_settings
from onramp.store.db import connect


def peak_rss_mb() -> float:
    """This process's peak resident set so far (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class TimedConnection:
    def __init__(self, con, totals: collections.Counter):
        self._con, self._totals = con, totals
        self.peak_growth: list[tuple[float, str]] = []  # (new peak MB, statement) when the peak grew

    def execute(self, sql, *args):
        start, before = time.perf_counter(), peak_rss_mb()
        result = self._con.execute(sql, *args)
        key = " ".join(sql.split())[:90]
        self._totals[key] += time.perf_counter() - start
        after = peak_rss_mb()
        if after > before + 50:
            self.peak_growth.append((after, key))
        return result

    def cursor(self):
        """The job's work connection (service/ingest.py), timed into the same totals."""
        timed = TimedConnection(self._con.cursor(), self._totals)
        timed.peak_growth = self.peak_growth
        return timed

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
    print(f"peak RSS {peak_rss_mb():.0f} MB; statements that raised it by > 50 MB:")
    for peak, statement in con.peak_growth:
        print(f"{peak:7.0f} MB {statement}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
