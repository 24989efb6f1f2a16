"""A typed client for services that call a watchword server (``docs/client.md``).

``Client`` (blocking) and ``AsyncClient`` have the same methods: authorization questions
(``check``, ``check_batch``, ``explain``, ``filter``), API tokens (``create_token``,
``list_tokens``, ``iter_tokens``, ``get_token``, ``rotate_token``, ``revoke_token``),
OAuth introspection (``introspect``) and ACL documents (``acl``, ``query_acl``). Answers
are frozen dataclasses; errors are raised as the ``watchword.errors`` class of the
answer's problem ``code``. Only httpx, ``watchword.errors`` and ``watchword.secret`` are
imported: no FastAPI, no server (the import-linter contracts in ``pyproject.toml``).
"""

from __future__ import annotations

from watchword.client._async import AsyncClient
from watchword.client._cache import CacheKey, DecisionCache
from watchword.client._core import MAX_BATCH, POLICY_GENERATION_HEADER
from watchword.client._errors import CLASSES_BY_CODE, FieldProblem, Problem, problem_of
from watchword.client._models import (
    AclDocument,
    AclEndpoint,
    AclGroup,
    AclSubject,
    CreatedToken,
    Decision,
    ExplainMatch,
    Explanation,
    FilterResult,
    Introspection,
    ObjectLike,
    OrganizationAcl,
    PermissionInfo,
    ProjectAcl,
    Question,
    Resource,
    ScopeReport,
    SqlFragment,
    StageReport,
    SubjectLike,
    SubjectRef,
    Token,
    TokenPage,
)
from watchword.client._retry import NO_RETRY, Retry
from watchword.client._sync import Client

__all__ = [
    "CLASSES_BY_CODE",
    "MAX_BATCH",
    "NO_RETRY",
    "POLICY_GENERATION_HEADER",
    "AclDocument",
    "AclEndpoint",
    "AclGroup",
    "AclSubject",
    "AsyncClient",
    "CacheKey",
    "Client",
    "CreatedToken",
    "Decision",
    "DecisionCache",
    "ExplainMatch",
    "Explanation",
    "FieldProblem",
    "FilterResult",
    "Introspection",
    "ObjectLike",
    "OrganizationAcl",
    "PermissionInfo",
    "Problem",
    "ProjectAcl",
    "Question",
    "Resource",
    "Retry",
    "ScopeReport",
    "SqlFragment",
    "StageReport",
    "SubjectLike",
    "SubjectRef",
    "Token",
    "TokenPage",
    "problem_of",
]
