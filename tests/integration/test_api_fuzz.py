"""Fuzz the live REST API from its own OpenAPI schema (schemathesis): never a 5xx, and every
answer matches what the schema promises (status codes, content types, bodies).

Each generated request is sent twice, with the admin token (reaches every code path) and
with a partner token (reaches the tenancy checks).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from onramp.store.db import connect
from tests.integration.api_world import World, built_world

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(tmp_path_factory.mktemp("fuzz")) as w:
        # Keep the DuckDB instance warm: reopening a closed instance for every request costs
        # ~0.1 s here, which would spend the time budget on setup instead of cases.
        keep = connect(w.settings)
        try:
            yield w
        finally:
            keep.close()


@pytest.fixture
def api_schema(fuzz_world: World):
    return schemathesis.openapi.from_url(f"{fuzz_world.base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors(case, fuzz_world: World):
    for who in ("admin", "acme"):
        response = case.call(headers={"Authorization": f"Bearer {fuzz_world.tokens[who]}"}, timeout=30)
        case.validate_response(response, checks=CHECKS)
