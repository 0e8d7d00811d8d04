"""What every REST API route depends on: settings, the store for one request, the caller.

The store is opened lazily, at most once per request, and closed when the response is
done (ADR 0001: nobody keeps it open). A request waits only briefly for a store held by
another process (a CLI `ingest`) and then answers 503, so clients retry instead of hanging.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import duckdb
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from onramp.server.metrics import API_AUTH_FAILURES
from onramp.service.api_tokens import Principal, find_token, is_admin_token
from onramp.settings import Settings
from onramp.store.db import connect

STORE_WAIT_SECONDS = 5.0


class ApiError(HTTPException):
    """An error answer in the API's one shape: ``{"detail": {"message": ..., "hint": ...}}``."""

    def __init__(self, status: int, message: str, hint: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(status, {"message": message, "hint": hint}, headers)


def not_found(what: str, hint: str | None = None) -> ApiError:
    return ApiError(404, f"{what} not found", hint)


def settings_of(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    if settings is None:  # a wiring bug, not a client error
        raise RuntimeError("app.state.settings is not set; build the app with onramp.server.app.create_app(settings)")
    return settings


class Store:
    """The store for one request, opened on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            engine = self.settings.engine.model_copy(
                update={"lock_wait_seconds": min(self.settings.engine.lock_wait_seconds, STORE_WAIT_SECONDS)})
            try:
                self._con = connect(self.settings.model_copy(update={"engine": engine}))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                raise ApiError(503, "the store is busy (another Onramp process holds it)", "retry in a few seconds",
                               {"Retry-After": "5"}) from None
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def store(request: Request) -> Iterator[Store]:
    session = Store(settings_of(request))
    try:
        yield session
    except duckdb.TransactionException as exc:
        # Concurrent writers (a job and an API change) touched the same rows.
        raise ApiError(409, f"conflicting change: {exc}", "retry the request") from None
    finally:
        session.close()


bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <token>`: the admin token (`onramp tokens admin`) "
    "or one from `onramp tokens create`.",
)


def _unauthorized(message: str) -> ApiError:
    API_AUTH_FAILURES.inc()
    return ApiError(401, message, "send `Authorization: Bearer <token>`; see docs/api.md for getting one",
                    {"WWW-Authenticate": "Bearer"})


def principal(
    request: Request,
    session: Store = Depends(store),
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> Principal:
    """The caller. The token itself never reaches a log or an error message."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token")
    token = credentials.credentials
    if is_admin_token(settings_of(request), token):
        return Principal("admin")
    found = find_token(session.con, token)
    if found is None:
        raise _unauthorized("unknown or revoked token")
    return found


def api_user(who: Principal = Depends(principal)) -> Principal:
    """Admin or partner: the roles that may read data (a metrics token may not)."""
    if who.role not in ("admin", "partner"):
        raise ApiError(403, "this token may only read /metrics", "use the admin token or a partner token")
    return who


def admin(who: Principal = Depends(principal)) -> Principal:
    if not who.is_admin:
        raise ApiError(403, "this operation needs the admin token", "ask the platform operator (`onramp tokens admin`)")
    return who


# Shorthands for route signatures.
StoreSession = Annotated[Store, Depends(store)]
ApiUser = Annotated[Principal, Depends(api_user)]
AdminUser = Annotated[Principal, Depends(admin)]
