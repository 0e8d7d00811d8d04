"""`onramp demo`: the inbound flow end to end on generated, realistic partner files.

Applies the demo taxonomy, writes ID-sync and data files like partners send them
(including one with errors and one with a bad name), ingests them as one job with a
progress bar, then prints the receipts and a few profiles.
"""

from __future__ import annotations

import gzip
import random
import time
from pathlib import Path

from onramp.settings import Settings


def _uuid(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") for _ in range(38))


def _cookie(rng: random.Random) -> str:
    return "ck" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for _ in range(20))


def _crm(rng: random.Random) -> str:
    return "CRM" + "".join(rng.choice("0123456789ABCDEF") for _ in range(12))


def _gaid(rng: random.Random) -> str:
    h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def write_demo_files(drop: Path, *, seed: int = 7, ts: int | None = None) -> list[Path]:
    """Realistic partner files for the demo taxonomy; returns their paths."""
    rng = random.Random(seed)
    ts = ts or int(time.time())
    drop.mkdir(parents=True, exist_ok=True)
    uuids = [_uuid(rng) for _ in range(40)]
    cookies = [_cookie(rng) for _ in uuids]
    crms = [_crm(rng) for _ in uuids[:20]]
    files: list[Path] = []

    def write(name: str, lines: list[str], *, crlf: bool = False) -> None:
        path = drop / name
        body = ("\r\n" if crlf else "\n").join(lines) + "\n"
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(body.encode(), compresslevel=6))
        else:
            path.write_text(body, encoding="utf-8")
        files.append(path)

    # ID syncs: platform UUIDs ↔ Acme cookies (21) and ↔ Acme CRM IDs (22).
    write(f"adobe_id_0_21_{ts}.sync", [f"{u}\t{c}" for u, c in zip(uuids, cookies)])
    write(f"adobe_id_0_22_{ts}.sync", [f"{u}\t{c}" for u, c in zip(uuids[:20], crms)], crlf=True)
    # Cookie data (device-level): synced cookies realize traits; unknown cookies find no match.
    items = ["1", "product=tablet", 'c_url="https://news.example/sports/today"', "c_make=A, c_model=B",
             '"product" = "Tablet Pro", ic=1', "d_sid=105", "color=red", "d_unsid=104"]
    lines = [f"{c}\t{rng.choice(items)}" for c in cookies]
    lines += [f"{_cookie(rng)}\t1,product=tablet" for _ in range(5)]
    write(f"ftp_dpm_21_{ts}.sync.gz", lines)
    # CRM overwrite (cross-device): traits land on customer profiles.
    write(f"ftp_dpm_22_{ts + 1}.overwrite",
          [f"{c}\tgender=f, price=42.50,,d_sid=107" if i % 2 == 0 else f"{c}\tgender=m,price=250" for i, c in enumerate(crms)])
    # GAIDs with Acme's cookie source as the target data owner.
    gaids = [_gaid(rng) for _ in range(10)]
    write(f"ftp_dpm_20914_21_{ts + 2}.sync", [f"{g}\tproduct=tablet,c_url=sports" for g in gaids] + ["E4FE9BDE-CAA0-47B6-908D-FFBA3FA184F2\t1"])
    # A platform-UUID feed with the usual mistakes.
    write(f"ftp_dpm_23_{ts + 3}.sync", [
        f"{uuids[0]}\td_sid=108",
        f"{uuids[1]}\td_sid=108,d_sid=101",
        f"{uuids[2]} d_sid=108",
        f"{uuids[3]}\td_sid=x",
        "12345\td_sid=108",
        f"{uuids[4]}\ttablet",
        f"{uuids[5]}\t\"a=1",
        f"{uuids[6]}\td_sid=999999",
        "",
    ])
    # A file the platform cannot take at all.
    write(f"ftp_dpm_21_{ts}.sync.zip", ["x\t1"])
    return files


def run_demo(settings: Settings) -> None:
    from onramp.cli import output
    from onramp.service.ingest import receipt_text, run_job
    from onramp.service.profiles import read_profile
    from onramp.service.clock import system_clock
    from onramp.store.db import connect
    from onramp.taxonomy.apply import apply_taxonomy
    from onramp.taxonomy.load import demo_taxonomy_text, load_taxonomy

    data_dir = Path(settings.data_dir)
    output.out.rule("[bold]Onramp demo")
    output.out.print(f"Data directory: {data_dir.resolve()}")
    con = connect(settings)
    try:
        taxonomy, _ = load_taxonomy(demo_taxonomy_text())
        summary = apply_taxonomy(con, taxonomy)
        output.out.print(f"Demo taxonomy applied: {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged")
    finally:
        con.close()
    drop = data_dir / "demo-drop" / time.strftime("date=%Y-%m-%d")
    files = write_demo_files(drop, ts=int(time.time()))
    output.out.print(f"Partner files written to {drop}:")
    for f in files:
        output.out.print(f"  {f.name}")
    with output.ingest_progress(True) as progress:
        result = run_job(settings, files, progress=progress)
    for r in result.receipts:
        output.out.rule(f"receipt {r.receipt_id[:8]} ({r.kind})")
        output.print_text(receipt_text(settings, r))
        if r.rejects:
            output.out.print(f"Every rejected line, with reason and fix hint: {data_dir / r.rejects}")
    con = connect(settings)
    try:
        uuid = con.execute(
            "SELECT id FROM realizations WHERE ns = 0 AND env = 'prod' GROUP BY id ORDER BY count(*) DESC, id LIMIT 1"
        ).fetchone()
        if uuid:
            output.out.rule("a device profile")
            view = read_profile(con, f"0:{uuid[0]}", env="prod", now=system_clock())
            output.print_profile({"profile": {"dpid": view.ns, "id": view.id}, "traits": view.traits,
                                  "merged_traits": view.merged_traits, "links": view.links, "segments": view.segments})
    finally:
        con.close()
    output.out.rule("next")
    output.out.print(f"onramp --data-dir {data_dir} receipts --last 3      # stored receipts")
    output.out.print(f"onramp --data-dir {data_dir} validate FILE          # dry-run a partner file")
    output.out.print(f"onramp --data-dir {data_dir} profile 0:<uuid>       # inspect a profile")
