"""The OpenAPI document, with every error an operation can answer.

FastAPI documents the success response and its own 422 shape in ``application/json``;
watchword answers errors as ``application/problem+json`` (:class:`~watchword.api.problem.Problem`)
with more statuses. :func:`document_errors` declares them on every operation of the
document from what the operation is made of (its security, parameters, body, method), so
a generated client or a schema-driven fuzzer can check every answer:

Rules (an operation may answer each status of each line that applies to it):

- it takes a credential: 400 (e.g. ``subject_required``: the credential names no subject
  where one is needed), 401 (none or not valid), 403 (not allowed), 404 (a thing it names
  is not there, or the caller may not read it), 429 (too many failed authentications from
  the caller's address, with ``Retry-After``), 503 (the database is not there);
- it takes input (a body, query or header parameters): 400 (a value the domain refuses:
  a cursor, an ``If-Match`` that is no ETag, a malformed policy) and 422 (a value the schema
  refuses);
- it has path parameters: 404 and 422;
- it takes a body: 413 (over the body limit);
- it takes ``If-Match``: 412 (stale); a PATCH: 428 (``If-Match`` missing);
- it writes (PATCH, DELETE, or a POST that creates, 201): 409.

FastAPI's ``HTTPValidationError`` schema is replaced by ``Problem`` everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI

from watchword.api.problem import HTTP_CODES, PROBLEM_JSON, Problem

__all__ = ["document_errors", "error_statuses", "install_openapi", "problem_response_doc"]

REF: Final = "#/components/schemas/"
_DESCRIPTIONS: Final = {
    400: "The request is malformed or refused by a rule (`invalid_request`, …).",
    401: "No credential, or one that is not valid (`unauthenticated`, `token_expired`, …).",
    403: "The caller may read the thing but not do this (`forbidden`, `not_a_member`).",
    404: "Not found, or the caller may not read it (`not_found`).",
    409: "In conflict with the current state (`already_exists`, `in_use`, `conflict`).",
    412: "`If-Match` does not match the current version (`version_conflict`).",
    413: "The request body is over the limit (`payload_too_large`).",
    422: "A field is invalid; `pointer` and `errors[]` name it (`invalid_request`).",
    428: "An update needs `If-Match` (`precondition_required`).",
    429: "Too many failed authentications from this address; see `Retry-After` "
    "(`too_many_failed_authentications`).",
    503: "A dependency (database, Redis) is not available (`unavailable`, …).",
}
_WRITES: Final = frozenset({"patch", "put", "delete"})


def problem_response_doc(status: int, description: str | None = None) -> dict[str, Any]:
    """The ``responses`` entry of a problem answer."""
    return {
        "description": description or _DESCRIPTIONS.get(status) or HTTP_CODES[status][1],
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF + "Problem"}}},
    }


def error_statuses(method: str, operation: Mapping[str, Any]) -> set[int]:
    """The error statuses an operation of the document can answer (the rules above)."""
    statuses: set[int] = set()
    params = operation.get("parameters", [])
    where = {p["in"] for p in params}
    headers = {p["name"].lower() for p in params if p["in"] == "header"}
    has_body = "requestBody" in operation
    if operation.get("security"):
        statuses |= {400, 401, 403, 404, 429, 503}
    if has_body or where & {"query", "header"}:
        statuses |= {400, 422}
    if "path" in where:
        statuses |= {404, 422}
    if has_body:
        statuses.add(413)
    if "if-match" in headers:
        statuses.add(412)
        if method == "patch":
            statuses.add(428)
    if method in _WRITES or (method == "post" and "201" in operation.get("responses", {})):
        statuses.add(409)
    return statuses


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Declare every operation's error answers as ``Problem``s (in place; idempotent)."""
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in error_statuses(method, operation):
                responses.setdefault(str(status), problem_response_doc(status))
            for status, response in responses.items():
                if int(status) >= 400:  # FastAPI's 422, and descriptions given by routes
                    described = problem_response_doc(int(status), response.get("description"))
                    if int(status) == 422:
                        described["description"] = _DESCRIPTIONS[422]
                    responses[status] = described
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template=REF + "{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for fastapi_shape in ("HTTPValidationError", "ValidationError"):
        schemas.pop(fastapi_shape, None)
    return document


def unique_operation_ids(document: dict[str, Any]) -> dict[str, Any]:
    """Suffix ``_<method>`` to an operation id shared by several methods of one route (in
    place; idempotent)."""
    seen: dict[str, int] = {}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "operationId" in operation:
                seen[operation["operationId"]] = seen.get(operation["operationId"], 0) + 1
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            op_id = operation.get("operationId") if isinstance(operation, dict) else None
            if op_id is not None and seen[op_id] > 1 and not op_id.endswith(f"_{method}"):
                operation["operationId"] = f"{op_id}_{method}"
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the app's document with :func:`document_errors` applied."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        with warnings.catch_warnings():
            # A route answering several methods (forward-auth's) has one operation id;
            # made unique per method below.
            warnings.filterwarnings("ignore", message="Duplicate Operation ID")
            document = generate()
        return document_errors(unique_operation_ids(document))

    app.openapi = openapi  # type: ignore[method-assign]
