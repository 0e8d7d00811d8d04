"""REST API (issue #3). Placeholder router; the API is built here."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
