"""cylinder deposits: a payment's amount includes its order's deposits (deposit_amount),
what was given back of them (deposit_credited), invoices' credited_amount, and one
deposit_credits row per returned cylinder (UNIQUE return_id)

Revision ID: 20261208_0004
Revises: 20261207_0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261208_0004"
down_revision: str | None = "20261207_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"

CREDIT_STATUSES = ("pending", "credited", "void")
CREDIT_KINDS = ("refund", "invoice_credit")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _money(name: str) -> sa.Column:
    return sa.Column(name, sa.Numeric(14, 2), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.add_column("payments", _money("deposit_amount"), schema=SCHEMA)
    op.add_column("payments", _money("deposit_credited"), schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_payments_deposit_within_amount"),
        "payments",
        "deposit_amount >= 0 AND deposit_amount <= amount",
        schema=SCHEMA,
    )
    op.create_check_constraint(
        op.f("ck_payments_deposit_credited_within_deposit"),
        "payments",
        "deposit_credited >= 0 AND deposit_credited <= deposit_amount",
        schema=SCHEMA,
    )
    op.add_column("invoices", _money("credited_amount"), schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_invoices_credited_within_amount"),
        "invoices",
        "credited_amount >= 0 AND credited_amount <= amount",
        schema=SCHEMA,
    )

    op.create_table(
        "deposit_credits",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("return_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("payment_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("order_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("hospital_org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("credited_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("status", CREDIT_STATUSES), name=op.f("ck_deposit_credits_status")),
        sa.CheckConstraint(
            f"kind IS NULL OR {_in('kind', CREDIT_KINDS)}", name=op.f("ck_deposit_credits_kind")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_deposit_credits_amount_positive")),
        sa.CheckConstraint(
            "status <> 'credited' OR "
            "(kind IS NOT NULL AND payment_id IS NOT NULL AND credited_at IS NOT NULL)",
            name=op.f("ck_deposit_credits_credited_complete"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            [f"{SCHEMA}.payments.id"],
            name=op.f("fk_deposit_credits_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposit_credits")),
        sa.UniqueConstraint("return_id", name=op.f("uq_deposit_credits_return_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_deposit_credits_pending_order_id",
        "deposit_credits",
        ["order_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_deposit_credits_payment_id", "deposit_credits", ["payment_id"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_deposit_credits_payment_id", table_name="deposit_credits", schema=SCHEMA)
    op.drop_index(
        "ix_deposit_credits_pending_order_id", table_name="deposit_credits", schema=SCHEMA
    )
    op.drop_table("deposit_credits", schema=SCHEMA)
    op.drop_constraint(
        op.f("ck_invoices_credited_within_amount"), "invoices", type_="check", schema=SCHEMA
    )
    op.drop_column("invoices", "credited_amount", schema=SCHEMA)
    for constraint in (
        "ck_payments_deposit_credited_within_deposit",
        "ck_payments_deposit_within_amount",
    ):
        op.drop_constraint(op.f(constraint), "payments", type_="check", schema=SCHEMA)
    op.drop_column("payments", "deposit_credited", schema=SCHEMA)
    op.drop_column("payments", "deposit_amount", schema=SCHEMA)
