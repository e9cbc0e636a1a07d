"""Alembic migrations of the storage schema."""
