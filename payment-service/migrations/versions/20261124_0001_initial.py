"""initial: payments, invoices, webhook events, the sandbox provider's books, outbox, inbox
and idempotency keys

Revision ID: 20261124_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261124_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"

STATUSES = ("pending", "authorized", "captured", "voided", "refunded", "failed")
METHODS = ("card", "invoice", "cash_on_delivery")
INVOICE_STATUSES = ("open", "paid", "void")
SANDBOX_STATUSES = ("authorized", "captured", "voided", "refunded")
TOKEN_PATTERN = r"^tok_[a-z0-9_]+$"  # noqa: S105 - a shape, not a secret


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("order_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("hospital_org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "captured_amount", sa.Numeric(14, 2), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "refunded_amount", sa.Numeric(14, 2), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("provider", sa.String(length=30), nullable=True),
        sa.Column("provider_token", sa.String(length=100), nullable=True),
        sa.Column("provider_ref", sa.String(length=100), nullable=True),
        sa.Column("last4", sa.String(length=4), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("events", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("status", STATUSES), name=op.f("ck_payments_status")),
        sa.CheckConstraint(_in("method", METHODS), name=op.f("ck_payments_method")),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_payments_amount_non_negative")),
        sa.CheckConstraint(
            "captured_amount >= 0 AND captured_amount <= amount",
            name=op.f("ck_payments_captured_within_amount"),
        ),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= captured_amount",
            name=op.f("ck_payments_refunded_within_captured"),
        ),
        sa.CheckConstraint(
            f"provider_token IS NULL OR provider_token ~ '{TOKEN_PATTERN}'",
            name=op.f("ck_payments_token"),
        ),
        sa.CheckConstraint("last4 IS NULL OR last4 ~ '^[0-9]{4}$'", name=op.f("ck_payments_last4")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("order_id", name=op.f("uq_payments_order_id")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_payments_hospital_org_id_created_at"),
        "payments",
        ["hospital_org_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_payments_vendor_id_created_at"),
        "payments",
        ["vendor_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_payments_created_at"), "payments", ["created_at"], schema=SCHEMA)
    op.create_index(
        op.f("ix_payments_provider_ref"),
        "payments",
        ["provider", "provider_ref"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("provider_ref IS NOT NULL"),
    )

    op.execute(sa.schema.CreateSequence(sa.Sequence("invoice_number_seq", schema=SCHEMA)))
    op.create_table(
        "invoices",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("number", sa.String(length=30), nullable=False),
        sa.Column("payment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("order_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("hospital_org_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.CheckConstraint(_in("status", INVOICE_STATUSES), name=op.f("ck_invoices_status")),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_invoices_amount_non_negative")),
        sa.CheckConstraint("due_at > issued_at", name=op.f("ck_invoices_due_after_issue")),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            [f"{SCHEMA}.payments.id"],
            name=op.f("fk_invoices_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_invoices_payment_id")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_invoices_hospital_org_id_issued_at"),
        "invoices",
        ["hospital_org_id", "issued_at"],
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_invoices_vendor_id_issued_at"),
        "invoices",
        ["vendor_id", "issued_at"],
        schema=SCHEMA,
    )

    op.create_table(
        "webhook_events",
        sa.Column("provider", sa.String(length=30), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id", name=op.f("pk_webhook_events")),
        schema=SCHEMA,
    )

    op.create_table(
        "sandbox_charges",
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("authorized_amount", sa.Numeric(14, 2), nullable=False),
        sa.Column(
            "captured_amount", sa.Numeric(14, 2), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "refunded_amount", sa.Numeric(14, 2), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("status", SANDBOX_STATUSES), name=op.f("ck_sandbox_charges_status")),
        sa.CheckConstraint(
            "refunded_amount <= captured_amount AND captured_amount <= authorized_amount",
            name=op.f("ck_sandbox_charges_amounts"),
        ),
        sa.CheckConstraint(f"token ~ '{TOKEN_PATTERN}'", name=op.f("ck_sandbox_charges_token")),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_sandbox_charges")),
        schema=SCHEMA,
    )
    op.create_table(
        "sandbox_requests",
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("operation", sa.String(length=20), nullable=False),
        sa.Column("charge_ref", sa.String(length=40), nullable=True),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_sandbox_requests")),
        schema=SCHEMA,
    )

    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _created_at(),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column(
            "handled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema=SCHEMA,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema=SCHEMA)
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("sandbox_requests", schema=SCHEMA)
    op.drop_table("sandbox_charges", schema=SCHEMA)
    op.drop_table("webhook_events", schema=SCHEMA)
    for index in ("ix_invoices_vendor_id_issued_at", "ix_invoices_hospital_org_id_issued_at"):
        op.drop_index(op.f(index), table_name="invoices", schema=SCHEMA)
    op.drop_table("invoices", schema=SCHEMA)
    op.execute(sa.schema.DropSequence(sa.Sequence("invoice_number_seq", schema=SCHEMA)))
    for index in (
        "ix_payments_provider_ref",
        "ix_payments_created_at",
        "ix_payments_vendor_id_created_at",
        "ix_payments_hospital_org_id_created_at",
    ):
        op.drop_index(op.f(index), table_name="payments", schema=SCHEMA)
    op.drop_table("payments", schema=SCHEMA)
