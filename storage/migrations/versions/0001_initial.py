"""Portals, their users, field mappings and rate-limiter state.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portals",
        sa.Column("portal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hub_domain", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("disconnected_reason", sa.Text()),
        sa.Column("access_token", sa.Text()),
        sa.Column("refresh_token", sa.Text()),
        sa.Column("access_expires_at", sa.DateTime(timezone=True)),
        sa.Column("refresh_owner", sa.String(200)),
        sa.Column("refresh_lease_until", sa.Double()),
        sa.Column("kleer_company_id", sa.BigInteger()),
        sa.Column("kleer_api_key", sa.Text()),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('connected', 'disconnected')", name="ck_portals_status"),
        sa.PrimaryKeyConstraint("portal_id", name="pk_portals"),
    )
    op.create_table(
        "portal_users",
        sa.Column("portal_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["portal_id"], ["portals.portal_id"], ondelete="CASCADE",
                                name="fk_portal_users_portal_id_portals"),
        sa.PrimaryKeyConstraint("portal_id", "user_id", name="pk_portal_users"),
    )
    op.create_index("ix_portal_users_user_id", "portal_users", ["user_id"])
    op.create_table(
        "field_mappings",
        sa.Column("portal_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("mappings", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["portal_id"], ["portals.portal_id"], ondelete="CASCADE",
                                name="fk_field_mappings_portal_id_portals"),
        sa.PrimaryKeyConstraint("portal_id", "kind", name="pk_field_mappings"),
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("tat", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limits"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
    op.drop_table("field_mappings")
    op.drop_index("ix_portal_users_user_id", table_name="portal_users")
    op.drop_table("portal_users")
    op.drop_table("portals")
