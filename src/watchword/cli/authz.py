"""``watchword authz check|explain``: one authorization question from the command line.

The policy is the stored, active one (the configured database), or a policy document given
with ``--policy FILE`` (YAML or JSON with ``resource_types`` and ``roles``, the same shape
``watchword policy test`` reads). The subject is an inline document (``--subject``) or a
stored identity (``--issuer`` + ``--subject-id``, with optional ``--claims``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from watchword.authz import (
    CompiledSubject,
    Engine,
    Object,
    compile_subject,
    parse_object,
    parse_policy,
    parse_subject,
)
from watchword.cli.output import EXIT_FAILURE, console, emit, fail, run_with_services
from watchword.errors import InvalidInput, WatchwordError
from watchword.services import Services

NAME = "authz"
app = typer.Typer(help="Ask the policy engine one question.", no_args_is_help=True)

DocOpt = Annotated[
    str | None,
    typer.Option(help="Inline JSON/YAML document, or @FILE to read one.", metavar="DOC|@FILE"),
]


def _document(value: str, what: str) -> Any:
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            raise InvalidInput(f"--{what}: {value[1:]} cannot be read ({exc.strerror})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"--{what} is not valid JSON or YAML: {exc}") from exc


class _Question:
    def __init__(
        self,
        subject: str | None,
        issuer: str | None,
        subject_id: str | None,
        claims: str | None,
        action: str,
        obj: str,
        policy: Path | None,
    ) -> None:
        if (subject is None) == (issuer is None or subject_id is None):
            raise InvalidInput("give --subject, or --issuer with --subject-id")
        self.subject_doc = _document(subject, "subject") if subject is not None else None
        self.issuer, self.subject_id = issuer, subject_id
        self.claims = _document(claims, "claims") if claims else None
        self.action = action
        self.object: Object = parse_object(_document(obj, "object"), "/object")
        self.policy_doc = _document("@" + str(policy), "policy") if policy is not None else None

    async def stored(self, services: Services) -> tuple[Engine, CompiledSubject]:
        rbac = services.rbac
        if self.subject_doc is not None:
            return services.policy_engine, await rbac.compile_document(
                parse_subject(self.subject_doc)
            )
        assert self.issuer is not None  # noqa: S101 - checked in __init__
        compiled = await rbac.compiled_for(self.issuer, self.subject_id, self.claims)
        return services.policy_engine, compiled

    def from_file(self) -> tuple[Engine, CompiledSubject]:
        if self.subject_doc is None:
            raise InvalidInput("with --policy, give the subject inline with --subject")
        engine = Engine(parse_policy(self.policy_doc))
        return engine, compile_subject(engine.policy, parse_subject(self.subject_doc))


def _ask(ctx: typer.Context, q: _Question, as_json: bool) -> tuple[Engine, CompiledSubject]:
    if q.policy_doc is not None:
        return q.from_file()
    return run_with_services(ctx, q.stored, as_json=as_json)


SubjectIdOpt = Annotated[str | None, typer.Option("--subject-id", help="Stored subject id.")]
IssuerOpt = Annotated[str | None, typer.Option(help="Issuer of the stored subject.")]
ActionOpt = Annotated[str, typer.Option(help="The action, e.g. read.")]
ObjectOpt = Annotated[
    str,
    typer.Option(
        "--object",
        help='The object: {"type": …, "id": …, "org_id"?, "project_id"?, "owner"?, "acl"?}',
        metavar="DOC|@FILE",
    ),
]
PolicyOpt = Annotated[
    Path | None, typer.Option(help="Use this policy document instead of the stored policy.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
def check(
    ctx: typer.Context,
    action: ActionOpt,
    obj: ObjectOpt,
    subject: DocOpt = None,
    issuer: IssuerOpt = None,
    subject_id: SubjectIdOpt = None,
    claims: DocOpt = None,
    policy: PolicyOpt = None,
    fail_on_deny: Annotated[
        bool, typer.Option("--fail-on-deny", help="Exit 1 when the answer is deny.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Is SUBJECT allowed to do ACTION on OBJECT?"""
    try:
        q = _Question(subject, issuer, subject_id, claims, action, obj, policy)
        engine, compiled = _ask(ctx, q, as_json)
        decision = engine.check(compiled, q.action, q.object)
    except WatchwordError as exc:
        fail(exc, as_json=as_json)

    def human() -> None:
        word = "[bold green]allow[/]" if decision.allowed else "[bold red]deny[/]"
        how = f" (decided by {decision.decided_by.value}"
        how += f", role {decision.role!r})" if decision.role else ")"
        console.print(word + how)

    emit(decision.to_dict(), as_json=as_json, human=human)
    if fail_on_deny and not decision.allowed:
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def explain(
    ctx: typer.Context,
    action: ActionOpt,
    obj: ObjectOpt,
    subject: DocOpt = None,
    issuer: IssuerOpt = None,
    subject_id: SubjectIdOpt = None,
    claims: DocOpt = None,
    policy: PolicyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Why would SUBJECT be allowed or denied ACTION on OBJECT? Every level's verdict."""
    try:
        q = _Question(subject, issuer, subject_id, claims, action, obj, policy)
        engine, compiled = _ask(ctx, q, as_json)
        explanation = engine.explain(compiled, q.action, q.object)
    except WatchwordError as exc:
        fail(exc, as_json=as_json)
    emit(
        explanation.to_dict(),
        as_json=as_json,
        human=lambda: console.print(explanation.to_text(), markup=False, highlight=False),
    )


__all__ = ["NAME", "app"]
