from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import event

from watchword.runtime import Runtime
from watchword.tokens.model import Owner


@dataclass
class StatementLog:
    statements: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.statements)

    def clear(self) -> None:
        self.statements.clear()


@pytest.fixture
def sql_log(runtime: Runtime) -> Iterator[StatementLog]:
    """Every SQL statement the runtime's engine sends, from now on."""
    log = StatementLog()

    def record(*args: object) -> None:
        log.statements.append(str(args[2]))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    yield log
    event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)


@pytest.fixture
def owner(runtime: Runtime) -> Owner:
    return Owner(issuer=runtime.settings.issuer_url, subject="user-1")
