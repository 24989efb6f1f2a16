"""Storage: SQLAlchemy 2 (asyncio) engines, tables, repositories and Alembic migrations."""
