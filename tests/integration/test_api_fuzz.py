"""Fuzz the live REST API from its own OpenAPI schema (schemathesis): never a 5xx, and every
answer matches what the schema promises (status codes, content types, bodies).

Each generated request is sent twice, with the admin token (reaches every code path) and
with a partner token (reaches the tenancy checks). Operations are driven through
``as_strategy`` inside the test rather than ``schemathesis.pytest.from_fixture``: its lazy
loader breaks on pytest 9 (it sets ``node._nodeid``), and this way the schema is the one
the running server serves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from onramp.store.db import connect
from tests.integration.api_world import World, built_world

EXAMPLES = 10  # per operation, mode and token: the whole file stays well under a minute
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


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors(fuzz_world: World, mode: GenerationMode):
    # Loaded inside the test (not at collection): the schema is the one the live server serves.
    schema = schemathesis.openapi.from_url(f"{fuzz_world.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13, [op.label for op in operations]
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
            continue  # nothing to make invalid (e.g. /healthz)
        _fuzz(operation, mode, fuzz_world)


def _has_inputs(operation) -> bool:
    parts = (operation.path_parameters, operation.query, operation.headers, operation.cookies, operation.body)
    return any(len(p) for p in parts)


def _fuzz(operation, mode: GenerationMode, world: World) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        for who in ("admin", "acme"):
            response = case.call(headers={"Authorization": f"Bearer {world.tokens[who]}"}, timeout=30)
            case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Exception as exc:
        exc.add_note(f"operation: {operation.label} ({mode.value} data)")
        raise
