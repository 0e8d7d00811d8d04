"""The platform's PGP key: partners encrypt inbound files to it (SPEC §3.3.2).

A thin layer over python-gnupg and the ``gpg`` binary. The keyring lives in its own
GnuPG home directory (mode 0700); gpg runs in batch mode with loopback pinentry, so it
fails instead of prompting when something needs a passphrase.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnupg

DEFAULT_UID = "Onramp Platform <platform@onramp.invalid>"

# OpenPGP symmetric algorithm IDs (RFC 4880 §9.2, RFC 5581) as gpg reports them in
# ``DECRYPTION_INFO <mdc_method> <sym_algo> [<aead_algo>]``.
SYMMETRIC_CIPHERS: dict[int, str] = {
    1: "IDEA",
    2: "3DES",
    3: "CAST5",
    4: "BLOWFISH",
    7: "AES128",
    8: "AES192",
    9: "AES256",
    10: "TWOFISH",
    11: "CAMELLIA128",
    12: "CAMELLIA192",
    13: "CAMELLIA256",
}
AES_CIPHERS = frozenset({"AES128", "AES192", "AES256"})

_GPG_OPTIONS = ["--pinentry-mode", "loopback", "--no-auto-key-retrieve"]
_IO_CHUNK = 1 << 20
_UID_PARTS = re.compile(r"^(?P<name>[^<(]*?)\s*(?:\((?P<comment>[^)]*)\)\s*)?(?:<(?P<email>[^>]*)>)?\s*$")


@dataclass(frozen=True)
class DecryptInfo:
    """Outcome of one decryption.

    ``cipher`` is the symmetric cipher of the message (``AES256``, ``CAMELLIA128``, ...,
    ``ALGO<n>`` for unknown IDs) or ``None`` when gpg never got that far. ``status`` is
    python-gnupg's summary (``decryption ok``, ``no secret key``, ...). ``too_large``
    means the plaintext passed ``max_bytes`` and gpg was stopped; ``dst`` then holds
    only the first part.
    """

    ok: bool
    cipher: str | None
    status: str
    too_large: bool = False


class _GPG(gnupg.GPG):
    """python-gnupg keeps the gpg process and the status of a failed call to itself;
    remember both, so a runaway decryption (a PGP compression bomb) can be stopped and
    still report its cipher."""

    process: subprocess.Popen[bytes] | None = None
    result: Any = None

    def _open_subprocess(self, args: Any, passphrase: bool = False) -> Any:
        self.process = super()._open_subprocess(args, passphrase)
        return self.process

    def _collect_output(self, process: Any, result: Any, writer: Any = None, stdin: Any = None) -> Any:
        self.result = result
        return super()._collect_output(process, result, writer, stdin)


class PlatformKeyring:
    """The platform's key pair in a GnuPG home directory of its own."""

    def __init__(self, gnupg_home: Path, uid: str = DEFAULT_UID, *, key_length: int = 4096):
        self.gnupg_home = Path(gnupg_home)
        self.uid = uid
        self.key_length = key_length
        self.gnupg_home.mkdir(parents=True, exist_ok=True)
        # gpg warns about (and agents refuse) group- or world-readable homes.
        os.chmod(self.gnupg_home, 0o700)

    def _gpg(self) -> _GPG:
        # A fresh wrapper per operation: python-gnupg keeps per-call state (on_data,
        # the process) on the instance, and decryptions may run in parallel.
        gpg = _GPG(gnupghome=str(self.gnupg_home), options=list(_GPG_OPTIONS))
        gpg.buffer_size = _IO_CHUNK
        return gpg

    def fingerprint(self) -> str | None:
        """Fingerprint of the platform secret key, or ``None`` before ``ensure_key``."""
        for key in self._gpg().list_keys(secret=True):
            if self.uid in key["uids"]:
                return str(key["fingerprint"])
        return None

    def ensure_key(self) -> str:
        """Return the platform key's fingerprint, creating the key pair on first use.

        The key is RSA (``key_length`` bits, 4096 like the original platform's) with an
        RSA encryption subkey of the same size, no expiry and no passphrase.
        """
        existing = self.fingerprint()
        if existing is not None:
            return existing
        result = self._gpg().gen_key(_key_parameters(self.uid, self.key_length))
        if not result.fingerprint:
            raise RuntimeError(f"gpg could not create the platform key: {result.stderr.strip()}")
        return str(result.fingerprint)

    def export_public(self) -> str:
        """The ASCII-armored public key that partners encrypt to."""
        armored = self._gpg().export_keys(self.ensure_key())
        if not armored:
            raise RuntimeError("gpg exported no public key")
        return str(armored)

    def decrypt_file(self, src: Path, dst: Path, *, max_bytes: int | None = None) -> DecryptInfo:
        """Decrypt ``src`` into ``dst`` with the platform key, streaming.

        The plaintext never passes through memory as a whole. When it grows beyond
        ``max_bytes`` gpg is killed and ``too_large`` is set (the rest is never written).
        """
        gpg = self._gpg()
        written = 0
        too_large = False
        with open(dst, "wb") as out:

            def on_data(chunk: bytes) -> bool:
                nonlocal written, too_large
                if chunk and not too_large:
                    out.write(chunk)
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        too_large = True
                        if gpg.process is not None:
                            gpg.process.kill()
                return False  # never let python-gnupg collect the plaintext in memory

            gpg.on_data = on_data
            try:
                result = gpg.decrypt_file(str(src))
            except OSError:
                # gpg killed mid-stream: the thread feeding it sees a broken pipe.
                if not too_large or gpg.result is None:
                    raise
                result = gpg.result
        status_text = str(getattr(result, "stderr", ""))
        cipher = _cipher_from_status(status_text)
        if too_large:
            return DecryptInfo(ok=False, cipher=cipher, status="stopped: plaintext too large", too_large=True)
        failed = any(word in status_text for word in ("[GNUPG:] DECRYPTION_FAILED", "[GNUPG:] BADMDC"))
        ok = bool(result.ok) and not failed
        return DecryptInfo(ok=ok, cipher=cipher, status=str(result.status or "decryption failed"))

    def close(self) -> None:
        """Stop the gpg-agent serving this home directory (gpg starts one on demand)."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.gnupg_home), "--kill", "gpg-agent"],
            check=False,
            capture_output=True,
        )

    def __enter__(self) -> PlatformKeyring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _key_parameters(uid: str, key_length: int) -> str:
    parts = _UID_PARTS.match(uid)
    if parts is None or not parts["name"]:
        raise ValueError(f"cannot use {uid!r} as a key user ID; write it as 'Name <email>'")
    lines = [
        "Key-Type: RSA",
        f"Key-Length: {key_length}",
        "Key-Usage: sign",
        "Subkey-Type: RSA",
        f"Subkey-Length: {key_length}",
        "Subkey-Usage: encrypt",
        f"Name-Real: {parts['name']}",
    ]
    if parts["comment"]:
        lines.append(f"Name-Comment: {parts['comment']}")
    if parts["email"]:
        lines.append(f"Name-Email: {parts['email']}")
    lines += ["Expire-Date: 0", "%no-protection", "%commit", ""]
    return "\n".join(lines)


def _cipher_from_status(status_text: str) -> str | None:
    for line in status_text.splitlines():
        if line.startswith("[GNUPG:] DECRYPTION_INFO "):
            fields = line.split()
            if len(fields) >= 4 and fields[3].isdigit():
                algo = int(fields[3])
                return SYMMETRIC_CIPHERS.get(algo, f"ALGO{algo}")
    return None
