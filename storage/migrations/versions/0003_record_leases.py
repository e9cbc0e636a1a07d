"""Record leases: one execution at a time writes a Kleer record (workflows/common.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_leases",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(300)),
        sa.Column("since", sa.Double(), nullable=False),
        sa.Column("takes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_record_leases"),
    )


def downgrade() -> None:
    op.drop_table("record_leases")
