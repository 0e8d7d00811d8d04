"""PGP inbound files with real gpg (SPEC §3.3.2, D-14): a partner keyring encrypts to the
platform's exported public key; ``open_content`` decrypts or rejects."""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from onramp.errors import FileRejected
from onramp.intake.containers import open_content
from onramp.intake.keys import DEFAULT_UID, PlatformKeyring
from onramp.settings import InboundSettings

DATA = b"".join(b"%038d\td_sid=%d\n" % (i, i % 13) for i in range(5_000))
DEFAULTS = InboundSettings()


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformKeyring]:
    # Key generation is slow: one platform key for the whole module, 2048 bits for speed.
    ring = PlatformKeyring(tmp_path_factory.mktemp("platform") / "gnupg", key_length=2048)
    ring.ensure_key()
    yield ring
    ring.close()


class Partner:
    """A partner's own keyring holding only the platform's public key.

    Public-key work needs no gpg-agent, so none is started unless ``agent=True``.
    """

    def __init__(self, home: Path, public_key: str):
        self.home = home
        home.mkdir(mode=0o700, exist_ok=True)
        home.chmod(0o700)
        self.gpg("--import", input=public_key.encode())

    def gpg(self, *args: str, input: bytes | None = None, agent: bool = False) -> None:
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--yes", "--trust-model", "always"]
        if not agent:
            cmd.append("--no-autostart")
        subprocess.run([*cmd, *args], input=input, check=True, capture_output=True)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"], check=False, capture_output=True)

    def encrypt(self, content: bytes, out: Path, *extra: str, cipher: str = "AES256") -> Path:
        plain = out.with_suffix(".plain")
        plain.write_bytes(content)
        self.gpg("--recipient", DEFAULT_UID, "--cipher-algo", cipher, *extra, "--output", str(out), "--encrypt", str(plain))
        plain.unlink()
        return out


@pytest.fixture(scope="module")
def partner(keyring: PlatformKeyring, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partner]:
    partner = Partner(tmp_path_factory.mktemp("partner"), keyring.export_public())
    yield partner
    partner.close()


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "scratch"
    path.mkdir()
    yield path
    assert list(path.iterdir()) == [], "decrypted scratch files must be deleted"


def decode(path: Path, keyring: PlatformKeyring, scratch: Path, limits: InboundSettings = DEFAULTS) -> bytes:
    with open_content(path, "pgp", limits=limits, keyring=keyring, scratch_dir=scratch) as stream:
        return stream.read()


def rejection(path: Path, keyring: PlatformKeyring, scratch: Path, limits: InboundSettings = DEFAULTS) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        decode(path, keyring, scratch, limits)
    assert caught.value.hint
    return caught.value


class TestKeyring:
    def test_home_is_private(self, keyring: PlatformKeyring) -> None:
        assert stat.S_IMODE(os.stat(keyring.gnupg_home).st_mode) == 0o700

    def test_ensure_key_is_idempotent(self, keyring: PlatformKeyring) -> None:
        fingerprint = keyring.ensure_key()
        assert len(fingerprint) == 40
        assert keyring.ensure_key() == fingerprint == keyring.fingerprint()

    def test_reopening_the_home_finds_the_same_key(self, keyring: PlatformKeyring) -> None:
        assert PlatformKeyring(keyring.gnupg_home).ensure_key() == keyring.ensure_key()

    def test_export_is_ascii_armored(self, keyring: PlatformKeyring) -> None:
        armored = keyring.export_public()
        assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        assert "PRIVATE" not in armored

    def test_default_key_matches_the_original_platform(self, tmp_path: Path) -> None:
        ring = PlatformKeyring(tmp_path / "gnupg")
        assert ring.key_length == 4096
        assert ring.uid == "Onramp Platform <platform@onramp.invalid>"
        assert ring.fingerprint() is None

    def test_decrypt_reports_the_cipher(self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path) -> None:
        src = partner.encrypt(b"hello\n", tmp_path / "m.gpg", cipher="AES192")
        info = keyring.decrypt_file(src, tmp_path / "m.out")
        assert (info.ok, info.cipher, info.status) == (True, "AES192", "decryption ok")
        assert (tmp_path / "m.out").read_bytes() == b"hello\n"


    def test_runaway_plaintext_is_stopped(self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path) -> None:
        src = partner.encrypt(b"0" * 20_000_000, tmp_path / "bomb.gpg", "--compress-algo", "zlib")
        info = keyring.decrypt_file(src, tmp_path / "bomb.out", max_bytes=1_000_000)
        assert (info.ok, info.too_large, info.cipher) == (False, True, "AES256")
        assert (tmp_path / "bomb.out").stat().st_size < 20_000_000


class TestAccepted:
    @pytest.mark.parametrize("cipher", ["AES", "AES192", "AES256"])
    def test_aes_round_trip(self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path, scratch: Path, cipher: str) -> None:
        src = partner.encrypt(DATA, tmp_path / "ftp_dpm_21_21_1700000000.sync.pgp", cipher=cipher)
        assert decode(src, keyring, scratch) == DATA

    @pytest.mark.parametrize("options", [["--armor"], ["--compress-algo", "bzip2"], ["--compress-algo", "none"]])
    def test_armor_and_pgp_compression_are_fine(
        self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path, scratch: Path, options: list[str]
    ) -> None:
        src = partner.encrypt(DATA, tmp_path / "f.sync.gpg", *options)
        assert decode(src, keyring, scratch) == DATA

    def test_scratch_file_is_deleted_after_a_failed_read(
        self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path, scratch: Path
    ) -> None:
        src = partner.encrypt(DATA, tmp_path / "f.sync.pgp")
        limits = InboundSettings(max_uncompressed_bytes=len(DATA))
        with pytest.raises(RuntimeError):
            with open_content(src, "pgp", limits=limits, keyring=keyring, scratch_dir=scratch) as stream:
                stream.read(10)
                raise RuntimeError("consumer failed")


class TestRejected:
    @pytest.mark.parametrize("cipher", ["CAMELLIA128", "3DES"])
    def test_non_aes_cipher(self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path, scratch: Path, cipher: str) -> None:
        src = partner.encrypt(DATA, tmp_path / "f.sync.pgp", cipher=cipher)
        error = rejection(src, keyring, scratch)
        assert error.message == "only AES ciphers are accepted"
        assert cipher in (error.hint or "")

    def test_gzip_inside_pgp(self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path, scratch: Path) -> None:
        src = partner.encrypt(gzip.compress(DATA), tmp_path / "f.sync.pgp")
        assert rejection(src, keyring, scratch).message == "gzip and PGP combined"

    def test_encrypted_to_another_key(self, tmp_path: Path, scratch: Path, keyring: PlatformKeyring) -> None:
        other = PlatformKeyring(tmp_path / "other", "Someone Else <else@onramp.invalid>", key_length=2048)
        try:
            other.ensure_key()
            stranger = Partner(tmp_path / "stranger", other.export_public())
            plain = tmp_path / "plain"
            plain.write_bytes(DATA)
            src = tmp_path / "f.sync.pgp"
            stranger.gpg("--recipient", other.uid, "--output", str(src), "--encrypt", str(plain))
        finally:
            other.close()
        error = rejection(src, keyring, scratch)
        assert error.message == "PGP decryption failed"
        assert "no secret key" in (error.hint or "")

    @pytest.mark.parametrize("content", [DATA, b"\x85\x01\x0c garbage", gzip.compress(DATA)])
    def test_not_pgp_at_all(self, keyring: PlatformKeyring, tmp_path: Path, scratch: Path, content: bytes) -> None:
        src = tmp_path / "f.sync.pgp"
        src.write_bytes(content)
        assert rejection(src, keyring, scratch).message == "PGP decryption failed"

    def test_truncated_message(self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path, scratch: Path) -> None:
        src = partner.encrypt(DATA, tmp_path / "f.sync.pgp", "--compress-algo", "none")
        src.write_bytes(src.read_bytes()[:-100])
        assert rejection(src, keyring, scratch).message == "PGP decryption failed"

    def test_symmetric_only_encryption(self, partner: Partner, keyring: PlatformKeyring, tmp_path: Path, scratch: Path) -> None:
        plain = tmp_path / "plain"
        plain.write_bytes(DATA)
        src = tmp_path / "f.sync.pgp"
        # Passphrase encryption needs the partner's agent; the fixture stops it afterwards.
        partner.gpg(
            "--pinentry-mode", "loopback", "--passphrase", "pw", "--output", str(src), "--symmetric", str(plain), agent=True
        )
        assert rejection(src, keyring, scratch).message == "PGP decryption failed"

    def test_plaintext_over_the_uncompressed_limit(
        self, keyring: PlatformKeyring, partner: Partner, tmp_path: Path, scratch: Path
    ) -> None:
        # A compression bomb in miniature: small encrypted, large decrypted.
        big = b"0" * 8_000_000
        src = partner.encrypt(big, tmp_path / "f.sync.pgp", "--compress-algo", "zlib")
        assert src.stat().st_size < 100_000
        limits = InboundSettings(max_uncompressed_bytes=1_000_000)
        error = rejection(src, keyring, scratch, limits)
        assert error.message == "larger than 1,000,000 bytes uncompressed"
