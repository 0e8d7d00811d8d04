"""Partner FTP/FTPS and SFTP servers on real sockets (SPEC §3.1, §8.7, §9.2).

Each partner is chrooted to its folder in the local drop zone; uploads at the home root
land in ``date=<UTC day>/`` and reach the drop-zone listing. A partner can never read
or write another partner's files: ``..``, absolute paths, real filesystem paths and
links planted in its home all stay inside or fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ftplib
import gzip
import io
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncssh
import pytest

from onramp.errors import UsageError
from onramp.settings import Settings
from onramp.transports.ftp_server import start_ftp_server
from onramp.transports.layout import put_back_name
from onramp.transports.local import LocalDropZone
from onramp.transports.partner_homes import PartnerAccount, accounts_from_settings
from onramp.transports.sftp_server import start_sftp_server

PARTNERS = {"acme": 7, "globex": 8}
NOW = dt.datetime(2026, 11, 22, 10, 0, 0)
DAY = "date=2026-11-22"
NAME = "ftp_dpm_21_1234567890.sync.gz"
SECRET = b"globex's private data\n"
GLOBEX_KEY = asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def zone_root(tmp_path: Path) -> Path:
    root = tmp_path / "dropzone" / "prod"
    secret = root / "globex" / DAY / "ftp_dpm_22_1234567890.sync"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(SECRET)
    return root


@pytest.fixture
def accounts() -> dict[str, PartnerAccount]:
    return {
        "acme": PartnerAccount("acme", "acme-pw"),
        "globex": PartnerAccount("globex", "globex-pw", (GLOBEX_KEY.export_public_key().decode(),)),
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", ftp={"host": "127.0.0.1", "port": 0, "sftp_port": 0})


def assert_stopped(port: int, thread_prefix: str) -> None:
    """Nothing left behind: the port refuses connections and the server thread is gone."""
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not [t for t in threading.enumerate() if t.name.startswith(thread_prefix)]


@pytest.fixture
def ftp_port(settings, zone_root, accounts):
    handle = start_ftp_server(settings, zone_root, accounts, clock=lambda: NOW)
    yield handle.port
    handle.close()
    assert_stopped(handle.port, "onramp-ftp")


@pytest.fixture
def sftp_port(settings, zone_root, accounts):
    handle = start_sftp_server(settings, zone_root, accounts, clock=lambda: NOW)
    yield handle.port
    handle.close()
    assert_stopped(handle.port, "onramp-sftp")


def ftp_login(port: int, user: str = "acme", password: str = "acme-pw") -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    try:
        ftp.login(user, password)
    except BaseException:
        ftp.close()
        raise
    return ftp


def refused(call, *args) -> bool:
    try:
        call(*args)
    except ftplib.error_perm:
        return True
    return False


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


# --- FTP -----------------------------------------------------------------------------


def test_ftp_upload_lands_in_the_drop_zone_byte_for_byte(ftp_port, zone_root):
    payload = gzip.compress(b"".join(b"uuid%d\td_sid=1\r\n" % i for i in range(2000)) + bytes(range(256)))
    with ftp_login(ftp_port) as ftp:
        ftp.storbinary(f"STOR {NAME}", io.BytesIO(payload))
        assert ftp.nlst() == [DAY]  # the partner sees where its upload went
    stored = zone_root / "acme" / DAY / NAME
    assert stored.read_bytes() == payload
    (obj,) = [o for o in LocalDropZone(zone_root, "prod", PARTNERS).list_objects() if o.partner == "acme"]
    assert (obj.pid, obj.date, obj.name) == (7, "2026-11-22", NAME)


def test_ftp_sessions_start_in_binary_mode(ftp_port, zone_root):
    raw = b"line one\r\nline two\r\n\x1f\x8b\r\n"
    with ftp_login(ftp_port) as ftp:
        conn = ftp.transfercmd("STOR raw.sync")  # no TYPE command: the server's default
        conn.sendall(raw)
        conn.close()
        ftp.voidresp()
    assert (zone_root / "acme" / DAY / "raw.sync").read_bytes() == raw


def test_ftp_partner_cannot_reach_another_partners_files(ftp_port, zone_root, tmp_path):
    before = files_under(zone_root / "globex")
    theirs = f"globex/{DAY}/ftp_dpm_22_1234567890.sync"
    os.symlink(zone_root / "globex", zone_root / "acme" / "peek")  # planted by someone else
    os.symlink(zone_root / theirs, zone_root / "acme" / "peek.sync")
    with ftp_login(ftp_port) as ftp:
        got = io.BytesIO()
        for path in (f"../{theirs}", f"/../../{theirs}", str(zone_root / theirs), f"peek/{DAY}/ftp_dpm_22_1234567890.sync", "peek.sync"):
            assert refused(ftp.retrbinary, f"RETR {path}", got.write), path
        for path in ("../globex/x.sync", f"/../globex/{DAY}/x.sync", str(zone_root / "globex" / "x.sync"), "peek/x.sync", "peek.sync"):
            assert refused(ftp.storbinary, f"STOR {path}", io.BytesIO(b"evil")), path
        assert refused(ftp.cwd, "peek")
        assert refused(ftp.delete, "peek.sync") or (zone_root / theirs).exists()
        ftp.cwd("../../..")
        assert ftp.pwd() == "/"
        assert set(ftp.nlst()) <= {"peek", "peek.sync"}
        assert refused(ftp.nlst, "peek") or ftp.nlst("peek") == []
        assert refused(ftp.sendcmd, "SITE CHMOD 777 peek.sync")
    assert got.getvalue() == b""
    assert files_under(zone_root / "globex") == before
    assert (zone_root / theirs).read_bytes() == SECRET


def test_ftp_partner_writes_only_at_its_home_root(ftp_port, zone_root):
    receipt = zone_root / "acme" / DAY / put_back_name(NAME, "receipt")
    receipt.parent.mkdir(parents=True)
    receipt.write_bytes(b"{}")
    with ftp_login(ftp_port) as ftp:
        got = io.BytesIO()
        ftp.retrbinary(f"RETR {DAY}/{receipt.name}", got.write)  # receipts are readable
        assert got.getvalue() == b"{}"
        assert refused(ftp.mkd, "date=2026-11-23")
        assert refused(ftp.storbinary, f"STOR {DAY}/{NAME}", io.BytesIO(b"x"))
        assert refused(ftp.delete, f"{DAY}/{receipt.name}")
        assert refused(ftp.rmd, DAY)
        ftp.storbinary(f"STOR {NAME}.filepart", io.BytesIO(b"part"))  # temp names wait at the root
        assert refused(ftp.rename, f"{NAME}.filepart", f"{DAY}/{NAME}")
        ftp.rename(f"{NAME}.filepart", NAME)  # ...and go to date= once renamed
    assert receipt.read_bytes() == b"{}"
    assert (zone_root / "acme" / DAY / NAME).read_bytes() == b"part"
    assert not (zone_root / "acme" / f"{NAME}.filepart").exists()


def test_ftp_rejects_bad_logins(ftp_port):
    def reply(login: tuple[str, str]) -> str:
        try:
            ftp_login(ftp_port, *login).close()
        except ftplib.error_perm as exc:
            return str(exc)[:3]
        return "logged in"

    bad = [("acme", "wrong"), ("globex", "acme-pw"), ("mallory", "acme-pw"), ("processed", "")]
    # In parallel: the server answers each failed login only after a 3 s anti-guessing pause.
    with ThreadPoolExecutor(len(bad)) as pool:
        assert list(pool.map(reply, bad)) == ["530"] * len(bad)
    ftp_login(ftp_port).close()


def test_ftps_requires_tls_when_a_certificate_is_configured(tmp_path, zone_root, accounts):
    cert = self_signed_pem(tmp_path / "ftps.pem")
    settings = Settings(data_dir=tmp_path / "data", ftp={"host": "127.0.0.1", "port": 0, "certfile": cert})
    with start_ftp_server(settings, zone_root, accounts, clock=lambda: NOW) as handle:
        with pytest.raises(ftplib.error_perm, match="550|530|TLS|SSL"):
            ftp_login(handle.port)  # plain-text password refused
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with ftplib.FTP_TLS(context=context) as ftps:
            ftps.connect("127.0.0.1", handle.port, timeout=10)
            ftps.login("acme", "acme-pw")
            ftps.prot_p()
            ftps.storbinary(f"STOR {NAME}", io.BytesIO(b"over tls"))
        assert (zone_root / "acme" / DAY / NAME).read_bytes() == b"over tls"
    assert_stopped(handle.port, "onramp-ftp")


def test_passive_replies_announce_the_masquerade_address_and_port_range(tmp_path, zone_root, accounts):
    """Behind NAT, clients must be told the public address and the opened port range."""
    settings = Settings(data_dir=tmp_path / "data", ftp={"host": "127.0.0.1", "port": 0, "passive_ports": "61000-61009",
                                                         "masquerade_address": "198.51.100.7"})
    with start_ftp_server(settings, zone_root, accounts, clock=lambda: NOW) as handle:
        ftp = ftp_login(handle.port)
        try:
            reply = ftp.sendcmd("PASV")
        finally:
            ftp.close()
    numbers = [int(n) for n in reply[reply.index("(") + 1:reply.index(")")].split(",")]
    assert reply.startswith("227") and numbers[:4] == [198, 51, 100, 7], reply
    assert 61000 <= numbers[4] * 256 + numbers[5] <= 61009, reply


def test_accounts_come_from_settings_and_bad_logins_are_refused(tmp_path, zone_root):
    settings = Settings(data_dir=tmp_path, ftp={"accounts": {"acme": "pw"}, "sftp_authorized_keys": {"globex": ["ssh-ed25519 AAAA"]}})
    accounts = accounts_from_settings(settings.ftp)
    assert accounts == {"acme": PartnerAccount("acme", "pw"), "globex": PartnerAccount("globex", None, ("ssh-ed25519 AAAA",))}
    for login in ("processed", "../globex", ".hidden"):
        with pytest.raises(UsageError, match="cannot be a drop folder"):
            start_ftp_server(Settings(data_dir=tmp_path, ftp={"port": 0}), zone_root, {login: PartnerAccount(login, "pw")})


def self_signed_pem(path: Path) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


# --- SFTP ----------------------------------------------------------------------------


def sftp(port: int, coro_fn, *, user: str = "acme", password: str | None = "acme-pw", key=None):
    """Run ``coro_fn(sftp_client)`` in a session; returns its result."""

    async def main():
        async with asyncssh.connect(
            "127.0.0.1", port, username=user, password=password, client_keys=[key] if key else None,
            known_hosts=None, agent_path=None, preferred_auth="publickey,password" if key else "password",
        ) as conn:
            async with conn.start_sftp_client() as client:
                return await coro_fn(client)

    return asyncio.run(main())


def uploader(name: str, data: bytes):
    async def upload(client):
        async with client.open(name, "wb") as f:
            await f.write(data)
        return sorted(await client.listdir("."))

    return upload


def test_sftp_upload_with_password_and_with_key(sftp_port, zone_root):
    assert sftp(sftp_port, uploader(NAME, b"by password")) == [".", "..", DAY]
    sftp(sftp_port, uploader(NAME, b"by key"), user="globex", password=None, key=GLOBEX_KEY)
    assert (zone_root / "acme" / DAY / NAME).read_bytes() == b"by password"
    assert (zone_root / "globex" / DAY / NAME).read_bytes() == b"by key"
    listed = {(o.partner, o.pid, o.name) for o in LocalDropZone(zone_root, "prod", PARTNERS).list_objects()}
    assert listed == {("acme", 7, NAME), ("globex", 8, NAME), ("globex", 8, "ftp_dpm_22_1234567890.sync")}


def test_sftp_rejects_bad_credentials(sftp_port):
    async def nothing(client):
        return None

    other_key = asyncssh.generate_private_key("ssh-ed25519")
    for kwargs in ({"password": "wrong"}, {"user": "globex", "password": "acme-pw"}, {"user": "mallory"},
                   {"user": "acme", "password": None, "key": GLOBEX_KEY}, {"user": "globex", "password": None, "key": other_key}):
        with pytest.raises(asyncssh.PermissionDenied):
            sftp(sftp_port, nothing, **kwargs)


def test_sftp_partner_cannot_reach_another_partners_files(sftp_port, zone_root):
    before = files_under(zone_root / "globex")
    theirs = f"globex/{DAY}/ftp_dpm_22_1234567890.sync"
    os.symlink(zone_root / "globex", zone_root / "acme" / "peek")
    os.symlink(zone_root / theirs, zone_root / "acme" / "peek.sync")

    async def attack(client):
        outcomes = {}
        for path in (f"../{theirs}", f"/../../{theirs}", str(zone_root / theirs), f"peek/{DAY}/ftp_dpm_22_1234567890.sync", "peek.sync"):
            outcomes[f"read {path}"] = await attempt(client.open(path, "rb"))
        for path in ("../globex/x.sync", f"/../globex/{DAY}/x.sync", str(zone_root / "globex" / "x.sync"), "peek/x.sync", "peek.sync"):
            outcomes[f"write {path}"] = await attempt(client.open(path, "wb"))
        outcomes["list peek"] = await attempt(client.listdir("peek"))
        outcomes["stat peek.sync"] = await attempt(client.stat("peek.sync"))
        outcomes["remove peek.sync"] = await attempt(client.remove("peek.sync"))
        outcomes["symlink"] = await attempt(client.symlink(str(zone_root / "globex"), "mine"))
        outcomes["hardlink"] = await attempt(client.link(f"../{theirs}", "mine.sync"))
        outcomes["rename out"] = await attempt(client.rename("peek.sync", f"../{theirs}"))
        root_listing = sorted(await client.listdir("/../.."))
        real = await client.realpath("../../..")
        return outcomes, root_listing, real

    outcomes, root_listing, real = sftp(sftp_port, attack)
    assert {k: v for k, v in outcomes.items() if v != "refused"} == {}
    assert root_listing == [".", "..", "peek", "peek.sync"]
    assert real == "/"
    assert files_under(zone_root / "globex") == before
    assert (zone_root / theirs).read_bytes() == SECRET
    assert files_under(zone_root / "acme") == {"peek", "peek.sync"}


async def attempt(coro) -> str:
    try:
        result = await coro
    except (asyncssh.SFTPError, OSError):
        return "refused"
    if hasattr(result, "close"):
        await result.close()
    return "allowed"


def test_sftp_partner_writes_only_at_its_home_root(sftp_port, zone_root):
    receipt = zone_root / "acme" / DAY / put_back_name(NAME, "receipt")
    receipt.parent.mkdir(parents=True)
    receipt.write_bytes(b"{}")

    async def session(client):
        async with client.open(f"{DAY}/{receipt.name}", "rb") as f:
            read = await f.read()
        outcomes = {
            "mkdir": await attempt(client.mkdir("date=2026-11-23")),
            "write in date=": await attempt(client.open(f"{DAY}/{NAME}", "wb")),
            "remove receipt": await attempt(client.remove(f"{DAY}/{receipt.name}")),
            "rmdir": await attempt(client.rmdir(DAY)),
            "chmod receipt": await attempt(client.chmod(f"{DAY}/{receipt.name}", 0o777)),
        }
        async with client.open(f"{NAME}.filepart", "wb") as f:
            await f.write(b"part")
        outcomes["rename into date="] = await attempt(client.rename(f"{NAME}.filepart", f"{DAY}/{NAME}"))
        waiting = sorted(await client.listdir("."))
        await client.rename(f"{NAME}.filepart", NAME)
        return read, outcomes, waiting

    read, outcomes, waiting = sftp(sftp_port, session)
    assert read == b"{}"
    assert outcomes == dict.fromkeys(outcomes, "refused")
    assert waiting == [".", "..", DAY, f"{NAME}.filepart"]
    assert (zone_root / "acme" / DAY / NAME).read_bytes() == b"part"
    assert receipt.read_bytes() == b"{}"


def test_sftp_upload_cut_off_by_a_dropped_connection_is_not_placed(sftp_port, zone_root):
    async def main():
        conn = await asyncssh.connect("127.0.0.1", sftp_port, username="acme", password="acme-pw", known_hosts=None, agent_path=None, preferred_auth="password")
        client = await conn.start_sftp_client()
        f = await client.open(NAME, "wb")
        await f.write(b"first half")
        conn.abort()  # the network drops mid-upload: no close from the client
        await conn.wait_closed()

    asyncio.run(main())
    partial = zone_root / "acme" / NAME
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size == 10):
        time.sleep(0.05)
    time.sleep(0.5)  # the server's own clean-up of the session has run by now
    assert partial.read_bytes() == b"first half"
    assert not (zone_root / "acme" / DAY).exists()
    assert LocalDropZone(zone_root, "prod", PARTNERS).list_objects()[0].partner == "globex"  # acme: nothing to process
