"""RBAC storage: repositories over the ``rbac_*`` tables (SQLite and PostgreSQL).

Every write runs in one transaction that also bumps the generation counter
(:mod:`.generation`), so caches keyed on the generation never serve a result computed
from inputs that have since changed.
"""
