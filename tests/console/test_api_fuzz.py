"""Fuzz the console's admin API from its own OpenAPI document (Schemathesis), over HTTP against the real
console, with an API token of every role: no input gets a 5xx, and every answer is one the document
describes (its status code, content type and body schema).

The tokens are of an org of its own (``fuzz``): what the fuzz creates, changes or deletes stays there,
and every other test's org is untouched."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from console.openapi import openapi_document
from tests.console.conftest import Console

pytestmark = pytest.mark.stack

schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.generation.update(modes=list(GenerationMode))  # valid input, and input the document forbids
ROLES = ("owner", "admin", "finance", "manager", "viewer")
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


@pytest.fixture(scope="module")
def fuzz_tokens(console: Console) -> dict[str, str]:
    """An API token per role of the org ``fuzz``, made by its owner on the Access page."""
    client = console.signed_in("felix")
    out = {}
    for role in ROLES:
        data = {"csrf": console.csrf(client), "name": f"fuzz-{role}", "role": role}
        page = client.post("/billing/access", data={**data, "departments": "eng" if role == "manager" else ""})
        assert page.status_code == 200, page.text
        out[role] = page.text.split('data-testid="new-token">', 1)[1].split("<", 1)[0]
    return out


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_answer_is_in_the_document(case: Any, console: Console, fuzz_tokens: dict[str, str]) -> None:
    for role in ROLES:
        response = case.call(base_url=console.url, headers={"Authorization": f"Bearer {fuzz_tokens[role]}"})
        assert response.status_code < 500, (role, case.method, case.formatted_path, response.text[:300])
        case.validate_response(response, checks=CHECKS)
