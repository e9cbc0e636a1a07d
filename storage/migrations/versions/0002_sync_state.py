"""The scheduled outbound sync's state: what was synced where, and unmatched clients.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_records",
        sa.Column("portal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("kleer_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hubspot_id", sa.String(64)),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("portal_id", "kind", "kleer_id", name="pk_sync_records"),
    )
    op.create_table(
        "sync_unmatched",
        sa.Column("portal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kleer_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("portal_id", "kleer_id", name="pk_sync_unmatched"),
    )


def downgrade() -> None:
    op.drop_table("sync_unmatched")
    op.drop_table("sync_records")
