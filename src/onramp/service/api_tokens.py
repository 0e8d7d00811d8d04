"""REST API bearer tokens: issue, list, revoke, and resolve a presented token to a principal.

A token reads ``onr_<token_id>_<secret>``. Only its SHA-256 is stored (``api_tokens``), so a
copy of the store does not hand out API access; the token itself is printed once, when it
is created. ``token_id`` is the public handle that ``tokens list`` shows and ``tokens revoke``
takes, and that may appear in logs; the secret part never does.

The admin token comes from ``http.admin_token`` or, when that is empty, from a file in the
data directory created on first use with mode 0600 (``onramp tokens admin`` prints it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from onramp.errors import UsageError
from onramp.settings import Settings

ADMIN_TOKEN_FILE = "admin-token"
PREFIX = "onr_"
ROLES = ("admin", "partner", "metrics")


@dataclass(frozen=True)
class Principal:
    """Who a request speaks for. ``partner`` is set for (and only for) partner tokens."""

    role: str
    partner: int | None = None
    token_id: str | None = None  # None for the configured/generated admin token

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class TokenRow:
    token_id: str
    role: str
    partner: int | None
    label: str | None
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict:
        return {"token_id": self.token_id, "role": self.role, "partner": self.partner, "label": self.label,
                "created_at": self.created_at, "revoked_at": self.revoked_at}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh ``(token_id, token)``: 8 hex characters of handle, 256 bits of secret."""
    token_id = secrets.token_hex(4)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


# -- admin token -----------------------------------------------------------------------------
def admin_token_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / ADMIN_TOKEN_FILE


def admin_token(settings: Settings) -> tuple[str, bool]:
    """The admin token and whether it comes from configuration (else from the data directory).

    Generated on first use. O_EXCL makes concurrent first uses agree on one token.
    """
    configured = settings.http.admin_token.get_secret_value()
    if configured:
        return configured, True
    path = admin_token_path(settings)
    try:
        return _read_token_file(path), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = f"{PREFIX}admin_{secrets.token_urlsafe(32)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token_file(path), False
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token, False


def _read_token_file(path: Path) -> str:
    token = path.read_text(encoding="ascii").strip()
    if not token:
        raise UsageError(f"{path} is empty", hint="delete it; a new admin token is generated on next use")
    return token


# -- partner and extra tokens -----------------------------------------------------------------
def create_token(con: duckdb.DuckDBPyConnection, *, role: str, partner: int | None, label: str | None,
                 now: datetime) -> tuple[TokenRow, str]:
    """Store a new token; returns its row and the token itself (shown to the user once)."""
    if role not in ROLES:
        raise UsageError(f"unknown token role '{role}'", hint=f"use one of: {', '.join(ROLES)}")
    if (role == "partner") != (partner is not None):
        raise UsageError("a partner token needs a partner, other tokens none",
                         hint="pass --partner PID for partner tokens only")
    if partner is not None and not con.execute("SELECT 1 FROM partners WHERE pid = ?", [partner]).fetchone():
        raise UsageError(f"partner {partner} does not exist",
                         hint="declare it in the taxonomy first (onramp taxonomy apply)")
    token_id, token = new_token()
    con.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                [token_id, token_hash(token), role, partner, label, now])
    return TokenRow(token_id, role, partner, label, now, None), token


def list_tokens(con: duckdb.DuckDBPyConnection) -> list[TokenRow]:
    rows = con.execute(
        "SELECT token_id, role, partner, label, created_at, revoked_at FROM api_tokens ORDER BY created_at, token_id"
    ).fetchall()
    return [TokenRow(*r) for r in rows]


def revoke_token(con: duckdb.DuckDBPyConnection, token_id: str, *, now: datetime) -> TokenRow:
    """Mark a token revoked (the row stays, so `tokens list` shows when it stopped working)."""
    row = con.execute("SELECT revoked_at FROM api_tokens WHERE token_id = ?", [token_id]).fetchone()
    if row is None:
        raise UsageError(f"no token '{token_id}'", hint="see `onramp tokens list` for token IDs")
    if row[0] is None:
        con.execute("UPDATE api_tokens SET revoked_at = ? WHERE token_id = ?", [now, token_id])
    return next(t for t in list_tokens(con) if t.token_id == token_id)


def is_admin_token(settings: Settings, token: str) -> bool:
    """Whether ``token`` is the configured or generated admin token (no store access)."""
    admin, _ = admin_token(settings)
    return hmac.compare_digest(token_hash(token), token_hash(admin))


def find_token(con: duckdb.DuckDBPyConnection, token: str) -> Principal | None:
    """The principal of a stored token, or None when it is unknown or revoked."""
    row = con.execute(
        "SELECT token_id, role, partner FROM api_tokens WHERE sha256 = ? AND revoked_at IS NULL", [token_hash(token)]
    ).fetchone()
    if row is None:
        return None
    return Principal(role=row[1], partner=row[2], token_id=row[0])
