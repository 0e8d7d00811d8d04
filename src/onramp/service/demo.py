"""`onramp demo`: the platform end to end, as partners meet it (DESIGN §1, issue #3).

Applies the demo taxonomy, starts the service on embedded defaults (free ports, a short
settle window), syncs a browser over the HTTP ID-sync endpoint, then delivers generated
partner files the way partners do: one over FTP, the others into the local drop zone.
It waits for the receipts the service writes back next to the uploads and prints what
happened and where to look. The service stops at the end, or keeps serving with
``keep_running`` until Ctrl-C.

The files are realistic on purpose: ID-sync files, a cookie data source `.sync.gz`, a
cross-device `.overwrite`, a GAID file with a target data owner (sent by a second
partner through an access mapping), a platform-UUID feed full of mistakes and a file
the platform cannot take at all.
"""

from __future__ import annotations

import glob
import gzip
import http.client
import logging
import os
import random
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from onramp.errors import OnrampError
from onramp.settings import Settings

DEMO_SETTLE_SECONDS = 1  # a partner's upload is quiet this long before it is processed
RECEIPT_TIMEOUT_SECONDS = 180.0
FTP_PARTNER = "acme"  # uploads the cookie data file over FTP
REDIRECT = "https://acme.example/sync?platform_id=${DD_UUID}"


# -- partner files ---------------------------------------------------------------------------
def _uuid(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") for _ in range(38))


def _cookie(rng: random.Random) -> str:
    return "ck" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for _ in range(20))


def _crm(rng: random.Random) -> str:
    return "CRM" + "".join(rng.choice("0123456789ABCDEF") for _ in range(12))


def _gaid(rng: random.Random) -> str:
    h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class DemoFile:
    """A generated partner file and how its partner delivers it."""

    path: Path
    partner: str  # the partner's name = its drop folder (§3.1)
    via: str  # "FTP" or "drop zone"
    phase: int  # 1: ID syncs, sent first; 2: data files


def http_synced_ids(seed: int = 7) -> tuple[str, str]:
    """The cookie and CRM ID the demo's browser syncs over HTTP (not in any ID-sync file)."""
    rng = random.Random(seed * 1_000_003)
    return _cookie(rng), _crm(rng)


def write_demo_files(folder: Path, *, seed: int = 7, ts: int | None = None) -> list[DemoFile]:
    """Realistic partner files for the demo taxonomy, written to ``folder``."""
    rng = random.Random(seed)
    ts = ts or int(time.time())
    folder.mkdir(parents=True, exist_ok=True)
    uuids = [_uuid(rng) for _ in range(40)]
    cookies = [_cookie(rng) for _ in uuids]
    crms = [_crm(rng) for _ in uuids[:20]]
    http_cookie, http_crm = http_synced_ids(seed)
    files: list[DemoFile] = []

    def write(name: str, lines: list[str], *, partner: str = "acme", via: str = "drop zone", phase: int = 2,
              crlf: bool = False) -> None:
        path = folder / name
        body = ("\r\n" if crlf else "\n").join(lines) + "\n"
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(body.encode(), compresslevel=6))
        else:
            path.write_text(body, encoding="utf-8")
        files.append(DemoFile(path, partner, via, phase))

    # ID syncs: platform UUIDs ↔ Acme cookies (21) and ↔ Acme CRM IDs (22).
    write(f"adobe_id_0_21_{ts}.sync", [f"{u}\t{c}" for u, c in zip(uuids, cookies)], phase=1)
    write(f"adobe_id_0_22_{ts}.sync", [f"{u}\t{c}" for u, c in zip(uuids[:20], crms)], phase=1, crlf=True)
    # Cookie data (device-level): synced cookies realize traits; unknown cookies find no match.
    # The browser synced over HTTP shops tablets too.
    items = ["1", "product=tablet", 'c_url="https://news.example/sports/today"', "c_make=A, c_model=B",
             '"product" = "Tablet Pro", ic=1', "d_sid=105", "color=red", "d_unsid=104"]
    lines = [f"{c}\t{rng.choice(items)}" for c in cookies]
    lines += [f"{_cookie(rng)}\t1,product=tablet" for _ in range(5)]
    lines.append(f"{http_cookie}\tproduct=tablet")
    write(f"ftp_dpm_21_{ts}.sync.gz", lines, via="FTP")
    # CRM overwrite (cross-device): traits land on customer profiles.
    write(f"ftp_dpm_22_{ts + 1}.overwrite",
          [f"{c}\tgender=f, price=42.50,,d_sid=107" if i % 2 == 0 else f"{c}\tgender=m,price=250" for i, c in enumerate(crms)]
          + [f"{http_crm}\tgender=f,price=19.99"])
    # GAIDs with Acme's cookie source as the target data owner, sent by Bravo, which may
    # write into it through an access mapping (second-party onboarding, §3.2.2).
    gaids = [_gaid(rng) for _ in range(10)]
    write(f"ftp_dpm_20914_21_{ts + 2}.sync", [f"{g}\tproduct=tablet,c_url=sports" for g in gaids]
          + ["E4FE9BDE-CAA0-47B6-908D-FFBA3FA184F2\t1"], partner="bravo")
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


# -- the service -----------------------------------------------------------------------------
def demo_settings(settings: Settings, ftp_password: str) -> Settings:
    """Embedded defaults for the demo: the local drop zone, continuous processing with a
    short settle window, plain FTP with an account for Acme (a configured one wins), and
    free ports unless ports are configured."""
    http = settings.http
    ftp = settings.ftp
    accounts = {FTP_PARTNER: SecretStr(ftp_password), **ftp.accounts}
    return settings.model_copy(update={
        "dropzone": settings.dropzone.model_copy(update={"kind": "local"}),
        "inbound": settings.inbound.model_copy(update={"schedule": "continuous", "settle_seconds": DEMO_SETTLE_SECONDS}),
        "http": http if "port" in http.model_fields_set else http.model_copy(update={"port": 0}),
        "ftp": ftp.model_copy(update={"enabled": True, "accounts": accounts, "certfile": None,  # plain FTP on loopback
                                      **({} if "port" in ftp.model_fields_set else {"port": 0})}),
    })


class _Service:
    """`onramp serve` in a background thread of this process, stopped by an event."""

    def __init__(self, settings: Settings, log_file: Path):
        from onramp.service.serve import Running

        self.settings = settings
        self.log_file = log_file
        self.stop = threading.Event()
        self.running = Running()
        self.code: int | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._handlers: list[logging.Handler] = []
        self.thread = threading.Thread(target=self._run, name="onramp-demo-service", daemon=True)

    def start(self, timeout: float = 60) -> None:
        # The service's log goes to a file, so the demo's own output stays readable.
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("onramp").setLevel(logging.INFO)
        self._log_to(logging.FileHandler(self.log_file, encoding="utf-8"))
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise OnrampError(f"the service did not start: {self.error or 'timeout'}",
                                  hint=f"see {self.log_file}")

    def _run(self) -> None:
        from onramp.service.serve import serve

        try:
            self.code = serve(self.settings, stop=self.stop, on_ready=self._on_ready)
        except BaseException as exc:  # noqa: BLE001 - reported by start() and check()
            self.error = exc

    def _on_ready(self, running) -> None:
        self.running = running
        self._ready.set()

    @property
    def zone(self) -> Path:
        from onramp.transports.dropzone import local_zone_root

        return local_zone_root(self.settings, "prod")

    @property
    def ftp_host(self) -> str:
        return _client_host(self.settings.ftp.host)

    @property
    def ftp_port(self) -> int:
        return self.running.ftp_ports["prod"]

    @property
    def client_url(self) -> str:
        """The HTTP server's URL to connect to (a wildcard address means this machine)."""
        return self.running.http_url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")

    def check(self) -> None:
        """Raise if the service stopped on its own."""
        if not self.thread.is_alive():
            raise OnrampError(f"the service stopped unexpectedly: {self.error or f'exit code {self.code}'}",
                              hint=f"see {self.log_file}")

    def _log_to(self, handler: logging.Handler) -> None:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
        logging.getLogger().addHandler(handler)
        self._handlers.append(handler)

    def show_log_on_stderr(self) -> None:
        """From now on the log also goes to stderr (`--keep-running`: see what the service does)."""
        import sys

        self._log_to(logging.StreamHandler(sys.stderr))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for handler in self._handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _client_host(host: str) -> str:
    """Where to connect to a server listening on ``host`` (a wildcard means this machine)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


# -- the ID-sync endpoint --------------------------------------------------------------------
@dataclass
class SyncCall:
    what: str
    path: str
    status: int = 0
    detail: str = ""


@dataclass
class HttpSync:
    calls: list[SyncCall] = field(default_factory=list)
    uuid: str | None = None  # the platform UUID the endpoint gave the demo's browser
    note: str | None = None  # why the step could not run


def _get(base_url: str, path: str, headers: dict[str, str] | None = None, timeout: float = 10):
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp, resp.read()
    finally:
        conn.close()


def exercise_idsync(base_url: str, settings: Settings, *, cookie: str, crm: str) -> HttpSync:
    """Three calls a browser makes (SPEC §2.1): a pixel, a redirect with ``${DD_UUID}``, a bad call."""
    result = HttpSync()
    name = settings.identity.cookie_name
    first = SyncCall(f"new browser, Acme cookie ID {cookie} (DPID 21)", f"/ibs:dpid=21&dpuuid={quote(cookie, safe='')}")
    try:
        first.status, resp, body = _get(base_url, first.path)
    except OSError as exc:
        result.note = f"the ID-sync endpoint did not answer ({exc}); skipped"
        return result
    jar = SimpleCookie(resp.getheader("set-cookie") or "")
    result.uuid = jar[name].value if name in jar else None
    first.detail = (f"1×1 GIF ({len(body)} bytes); cookie {name}={result.uuid}" if result.uuid
                    else f"unexpected answer: {body[:120]!r}")
    result.calls.append(first)
    if result.uuid is None:
        result.note = "the endpoint set no platform-UUID cookie; the HTTP-synced browser is left out"
        return result
    second = SyncCall(f"same browser, Acme CRM ID {crm} (DPID 22), with redir",
                      f"/ibs:dpid=22&dpuuid={quote(crm, safe='')}&redir={quote(REDIRECT, safe='')}")
    second.status, resp, body = _get(base_url, second.path, {"Cookie": f"{name}={result.uuid}"})
    second.detail = f"redirect to {resp.getheader('location')}" if second.status == 302 else body[:200].decode(errors="replace")
    result.calls.append(second)
    third = SyncCall("a raw email address as the user ID", "/ibs:dpid=21&dpuuid=jane.doe%40example.com")
    third.status, resp, body = _get(base_url, third.path, {"Cookie": f"{name}={result.uuid}"})
    third.detail = body[:200].decode(errors="replace").strip()
    result.calls.append(third)
    return result


# -- uploads and receipts --------------------------------------------------------------------
def upload_ftp(host: str, port: int, login: str, password: str, path: Path) -> None:
    """Binary upload to the partner's home root, as partners' FTP clients do (§3.1)."""
    import ftplib

    with ftplib.FTP() as ftp:
        ftp.connect(host, port, timeout=30)
        ftp.login(login, password)
        with path.open("rb") as fh:
            ftp.storbinary(f"STOR {path.name}", fh)
        ftp.quit()


def upload_local(zone: Path, partner: str, day: str, path: Path) -> Path:
    """Copy into ``<zone>/<partner>/date=<day>/`` under a hidden name, then rename: the watcher
    never sees a half-written file (docs/dropzones.md)."""
    folder = zone / partner / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.tmp"
    shutil.copyfile(path, tmp)
    os.replace(tmp, folder / path.name)
    return folder / path.name


@dataclass
class Delivered:
    """What became of one delivered file: its receipts, its reject files, where it went."""

    file: DemoFile
    receipts: list[Path] = field(default_factory=list)
    rejects: list[Path] = field(default_factory=list)
    archived: Path | None = None  # processed/… or rejected/…
    outcome: str = "processed"  # or "rejected": the file as a whole (§3.3)


def _delivered(zone: Path, f: DemoFile) -> Delivered | None:
    """The file's receipts once it has been handled (its receipts are written before it moves)."""
    from onramp.service.settle import logical_base
    from onramp.transports.layout import put_back_name

    name = f.path.name
    base = logical_base(name)
    home = zone / f.partner
    if (home / name).exists() or any(home.glob(f"date=*/{glob.escape(name)}")):
        return None  # still uploading, settling or being processed
    # `<base>.receipt.json`, or `<base>.<receipt id>.receipt.json` when a file has several
    suffix = put_back_name("", "receipt")
    ours = re.compile(re.escape(base) + r"(\.[0-9a-f-]{16,})?" + re.escape(suffix))
    receipts = sorted(p for p in home.glob(f"date=*/{glob.escape(base)}*{suffix}") if ours.fullmatch(p.name))
    for outcome in ("processed", "rejected"):
        archived = sorted(zone.glob(f"{outcome}/{f.partner}/date=*/{glob.escape(name)}"))
        if receipts and archived:
            rejects = [p for r in receipts if (p := r.with_name(put_back_name(r.name.removesuffix(suffix), "rejects"))).exists()]
            return Delivered(f, receipts, rejects, archived[-1], outcome)
    return None


def wait_for_receipts(service: _Service, files: list[DemoFile], *, timeout: float = RECEIPT_TIMEOUT_SECONDS) -> list[Delivered]:
    """Poll the drop zone until every file's receipt is written back, with a Rich progress."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from onramp.cli import output

    done: dict[Path, Delivered] = {}
    progress = Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=output.err)
    with progress:
        tasks = {f.path: progress.add_task(f"{f.partner}/{f.path.name} ({f.via})", total=1,
                                           status="waiting for the receipt")
                 for f in files}
        deadline = time.monotonic() + timeout
        while len(done) < len(files):
            service.check()
            if time.monotonic() > deadline:
                missing = ", ".join(f.path.name for f in files if f.path not in done)
                raise OnrampError(f"no receipt within {timeout:.0f} s for {missing}", hint=f"see {service.log_file}")
            for f in files:
                if f.path in done:
                    continue
                d = _delivered(service.zone, f)
                if d is not None:
                    done[f.path] = d
                    progress.update(tasks[f.path], completed=1, status=f"receipt written · {d.outcome}/")
            time.sleep(0.2)
    return [done[f.path] for f in files]


# -- the report ------------------------------------------------------------------------------
def _rel(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


_KINDS = {"id_sync": "ID sync", "data": "data", "rejected_files": "-"}
_LINE_ERRORS = ("format_errors", "invalid_aam_id", "invalid_device_id")


def _print_receipts(settings: Settings, delivered: list[Delivered]) -> Delivered:
    """One row per receipt; then the §6.2 text and the reject file of the file with the most
    line errors. Returns that file."""
    import json

    from rich.table import Table

    from onramp.cli import output
    from onramp.service.watcher import open_store

    table = Table(title="Receipts written back next to the uploads (<file>.receipt.json)")
    for col, justify in (("file", "left"), ("from", "left"), ("kind", "left"), ("lines", "right"), ("stored", "right"),
                         ("result", "left")):
        table.add_column(col, overflow="fold", justify=justify)  # type: ignore[arg-type]
    errors: list[tuple[int, str, Delivered]] = []
    for d in delivered:
        for path in d.receipts:
            body = json.loads(path.read_text())
            errors.append((sum(body.get(k, 0) for k in _LINE_ERRORS), body["receipt_id"], d))
            stored = body.get("stored_records", body.get("rows_stored", 0))
            result = "; ".join(f["status"] + (f": {f['reason']}" if f.get("reason") else "") for f in body["files"])
            table.add_row(d.file.path.name, f"{d.file.partner} ({d.file.via})", _KINDS.get(body["kind"], body["kind"]),
                          str(body.get("records_received", 0)), str(stored), result)
    output.out.print(table)
    _, rid, worst = max(errors, key=lambda e: e[0])
    con = open_store(settings)
    try:
        row = con.execute("SELECT text FROM receipts WHERE receipt_id = ?", [rid]).fetchone()
    finally:
        con.close()
    if row:
        output.out.rule(f"receipt of {worst.file.path.name} (the text mailed to the partner)")
        output.print_text(row[0])
    if worst.rejects:
        _print_rejects(worst.rejects[0])
    return worst


def _print_rejects(path: Path, limit: int = 8) -> None:
    from rich.table import Table

    from onramp.cli import output

    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh]
    header, body = rows[0], rows[1:]
    cols = [c for c in ("line_number", "bucket", "reason", "hint") if c in header]
    table = Table(title=f"{_rel(path)}: {len(body)} rejected line(s)" + (f", first {limit}" if len(body) > limit else ""))
    for c in cols:
        table.add_column(c.replace("_", " "), overflow="fold")
    for r in body[:limit]:
        table.add_row(*(r[header.index(c)] if header.index(c) < len(r) else "" for c in cols))
    output.out.print(table)


def _print_profiles(settings: Settings, sync: HttpSync) -> list[str]:
    """A few profiles: the browser synced over HTTP, the busiest device, a customer profile."""
    from onramp.cli import output
    from onramp.service.clock import system_clock
    from onramp.service.profiles import read_profile
    from onramp.service.watcher import open_store

    con = open_store(settings)
    refs: list[tuple[str, str]] = []
    try:
        if sync.uuid:
            refs.append((f"0:{sync.uuid}", "the browser synced over HTTP: its cookie data, and CRM traits through its CRM link"))
        busiest = con.execute(
            "SELECT id FROM realizations WHERE ns = 0 AND env = 'prod' GROUP BY id ORDER BY count(*) DESC, id LIMIT 1"
        ).fetchone()
        if busiest and f"0:{busiest[0]}" not in {r for r, _ in refs}:
            refs.append((f"0:{busiest[0]}", "the device with the most traits"))
        crm = con.execute(
            "SELECT id FROM realizations WHERE ns = 22 AND env = 'prod' GROUP BY id ORDER BY count(*) DESC, id LIMIT 1"
        ).fetchone()
        if crm:
            refs.append((f"22:{crm[0]}", "a customer profile from the CRM .overwrite"))
        for ref, why in refs:
            output.out.rule(f"profile {ref}: {why}")
            view = read_profile(con, ref, env="prod", now=system_clock(), link_ttl_days=settings.identity.link_ttl_days,
                                max_hops=settings.identity.max_resolution_hops)
            output.print_profile({"profile": {"dpid": view.ns, "id": view.id}, "traits": view.traits,
                                  "merged_traits": view.merged_traits, "links": view.links, "segments": view.segments})
    finally:
        con.close()
    return [r for r, _ in refs]


def _api_check(base_url: str, settings: Settings) -> str:
    """One authenticated REST call, so the printed URL is known to work."""
    import json

    from onramp.service.api_tokens import admin_token

    token, _ = admin_token(settings)
    try:
        status, _, body = _get(base_url, "/api/v1/receipts?limit=100", {"Authorization": f"Bearer {token}"})
    except OSError as exc:
        return f"did not answer ({exc})"
    if status != 200:
        return f"answered {status}"
    data = json.loads(body)
    items = data.get("receipts", data) if isinstance(data, dict) else data
    return f"200, {len(items)} stored receipt(s)"


# -- the command -----------------------------------------------------------------------------
def run_demo(settings: Settings, *, keep_running: bool = False) -> None:
    """Run the demo (see the module docstring); with ``keep_running``, serve on until Ctrl-C."""
    from onramp.cli import output

    data_dir = Path(settings.data_dir)
    output.out.rule("[bold]Onramp demo")
    _apply_demo_taxonomy(settings)
    demo = demo_settings(settings, secrets.token_urlsafe(12))
    service = _Service(demo, data_dir / "logs" / "demo-service.log")
    with output.err.status("Starting the service (drop zones, FTP, HTTP)…"):
        service.start()
    try:
        _show_service(service)
        sync = _sync_over_http(service)
        delivered = _deliver(service)
        output.out.rule("what happened")
        worst = _print_receipts(demo, delivered)
        profiles = _print_profiles(demo, sync)
        _print_next(service, delivered, worst, profiles, keep_running=keep_running)
        if keep_running:
            _serve_until_interrupted(service)
    finally:
        service.close()
    if keep_running:
        output.out.print("Service stopped.")


def _apply_demo_taxonomy(settings: Settings) -> None:
    from onramp.cli import output
    from onramp.store.db import connect, store_path
    from onramp.taxonomy.apply import apply_taxonomy
    from onramp.taxonomy.load import demo_taxonomy_text, load_taxonomy

    data_dir = Path(settings.data_dir)
    reused = store_path(data_dir).exists()
    output.out.print(f"Data directory: {data_dir.resolve()} "
                     + ("(reusing it: earlier data stays, this run adds new files)" if reused else "(new)"))
    con = connect(settings)
    try:
        summary = apply_taxonomy(con, load_taxonomy(demo_taxonomy_text())[0])
    finally:
        con.close()
    output.out.print(f"Demo taxonomy applied: {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged")


def _show_service(service: _Service) -> None:
    from onramp.cli import output

    out, s = output.out, service.settings
    out.rule("the service")
    out.print(f"Drop zone (prod): {service.zone.resolve()}")
    out.print(f"Partner FTP:      {service.ftp_host}:{service.ftp_port} (login {FTP_PARTNER})")
    out.print(f"HTTP:             {service.running.http_url} (ID sync /ibs:…, REST API /api/v1, docs /docs)")
    out.print(f"Settle window:    {s.inbound.settle_seconds} s (the demo's; `onramp serve` uses inbound.settle_seconds, default 30)")
    out.print(f"Service log:      {_rel(service.log_file)}")


def _sync_over_http(service: _Service) -> HttpSync:
    from onramp.cli import output

    output.out.rule("HTTP ID sync")
    cookie, crm = http_synced_ids()
    sync = exercise_idsync(service.client_url, service.settings, cookie=cookie, crm=crm)
    for call in sync.calls:
        output.out.print(f"GET {call.path}\n  {call.what} → {call.status}: {call.detail}")
    if sync.note:
        output.out.print(f"[yellow]note:[/] {sync.note}")
    return sync


def _deliver(service: _Service) -> list[Delivered]:
    """ID-sync files first, as partners do, then the data files; each batch until its receipts."""
    from onramp.cli import output
    from onramp.service.clock import system_clock

    day = system_clock().date().isoformat()  # the FTP server files uploads under the same UTC day
    password = service.settings.ftp.accounts[FTP_PARTNER].get_secret_value()
    delivered: list[Delivered] = []
    with tempfile.TemporaryDirectory(prefix="onramp-demo-") as tmp:
        files = write_demo_files(Path(tmp), ts=int(time.time()))
        for phase, title in ((1, "ID-sync files first"), (2, "then the data files")):
            batch = [f for f in files if f.phase == phase]
            output.out.rule(f"partners deliver files: {title}")
            for f in batch:
                if f.via == "FTP":
                    upload_ftp(service.ftp_host, service.ftp_port, f.partner, password, f.path)
                    output.out.print(f"  {f.partner} → FTP {service.ftp_host}:{service.ftp_port}  {f.path.name}")
                else:
                    output.out.print(f"  {f.partner} → {_rel(upload_local(service.zone, f.partner, day, f.path))}")
            delivered += wait_for_receipts(service, batch)
    return delivered


def _print_next(service: _Service, delivered: list[Delivered], worst: Delivered, profiles: list[str], *,
                keep_running: bool) -> None:
    import shlex

    from onramp.cli import output

    out, settings, zone = output.out, service.settings, service.zone
    data_dir = Path(settings.data_dir)
    http_url = service.running.http_url
    d = f"--data-dir {shlex.quote(str(data_dir))}"
    out.rule("where to look")
    out.print(f"Receipts (JSON), next to each upload: {_rel(zone)}/<partner>/date=YYYY-MM-DD/<file>.receipt.json")
    for p in (p for x in delivered for p in x.rejects):
        out.print(f"Reject file (every rejected line):    {_rel(p)}")
    out.print(f"Processed uploads:                    {_rel(zone / 'processed')}/")
    out.print(f"Uploads rejected as a whole:          {_rel(zone / 'rejected')}/")
    if settings.mail.smtp_host:
        out.print(f"Receipt mail:                         sent via {settings.mail.smtp_host}")
    else:
        out.print(f"Receipt mail (no SMTP configured):    {_rel(data_dir / 'outbox')}/*.eml")
    out.print(f"REST API:                             {http_url}/api/v1 "
              f"(checked: GET /api/v1/receipts → {_api_check(service.client_url, settings)})")
    out.print(f"Admin token for the REST API:         onramp {d} tokens admin")
    out.print("")
    out.print(f"onramp {d} receipts --last 3")
    for ref in profiles:
        out.print(f"onramp {d} profile {ref}")
    if worst.archived is not None:
        out.print(f"onramp {d} validate {shlex.quote(_rel(worst.archived))}")
    if not keep_running:
        out.print("The service stopped with the demo; `onramp demo --keep-running` (or `onramp serve`) keeps it up.")
        return
    out.rule("still serving")
    out.print(f"Drop files into {_rel(zone)}/<partner>/date=YYYY-MM-DD/, or upload over FTP to "
              f"{service.ftp_host}:{service.ftp_port} (login {FTP_PARTNER}, password "
              f"{settings.ftp.accounts[FTP_PARTNER].get_secret_value()}).")
    out.print(f'curl -H "Authorization: Bearer $(onramp {d} tokens admin)" {http_url}/api/v1/receipts')
    out.print("Press Ctrl-C to stop.")


def _serve_until_interrupted(service: _Service) -> None:
    """Until Ctrl-C or SIGTERM; the service's log lines now also go to stderr."""
    import sys

    sys.stdout.flush()
    service.show_log_on_stderr()
    previous = signal.signal(signal.SIGTERM, lambda *_: service.stop.set())
    try:
        while not service.stop.is_set() and service.thread.is_alive():
            service.stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not service.stop.is_set():
        service.check()  # the service died on its own: say so, exit non-zero
