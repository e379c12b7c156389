"""initial: delivered-orders projection, reviews, vendor rating summaries, outbox and inbox

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

SCHEMA = "reviews"


def _timestamp(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _counter(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "delivered_orders",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_org_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        _timestamp("recorded_at"),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_delivered_orders")),
        schema=SCHEMA,
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("hospital_org_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("hidden", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("hidden_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hidden_by", sa.Uuid(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_by", sa.Uuid(), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_reviews_rating")),
        sa.CheckConstraint("char_length(comment) <= 2000", name=op.f("ck_reviews_comment_length")),
        sa.CheckConstraint(
            "char_length(response_body) <= 2000", name=op.f("ck_reviews_response_body_length")
        ),
        sa.CheckConstraint(
            "(response_body IS NULL) = (responded_at IS NULL)",
            name=op.f("ck_reviews_response_complete"),
        ),
        sa.CheckConstraint(
            "hidden = (hidden_at IS NOT NULL)", name=op.f("ck_reviews_hidden_complete")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            [f"{SCHEMA}.delivered_orders.order_id"],
            name=op.f("fk_reviews_order_id_delivered_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("order_id", name=op.f("uq_reviews_order_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_reviews_vendor_id_created_at",
        "reviews",
        ["vendor_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_table(
        "vendor_rating_summaries",
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        _counter("review_count"),
        _counter("rating_sum"),
        _counter("rating_1"),
        _counter("rating_2"),
        _counter("rating_3"),
        _counter("rating_4"),
        _counter("rating_5"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "rating_1 >= 0 AND rating_2 >= 0 AND rating_3 >= 0 AND rating_4 >= 0 AND rating_5 >= 0",
            name=op.f("ck_vendor_rating_summaries_non_negative"),
        ),
        sa.CheckConstraint(
            "review_count = rating_1 + rating_2 + rating_3 + rating_4 + rating_5",
            name=op.f("ck_vendor_rating_summaries_count_matches_distribution"),
        ),
        sa.CheckConstraint(
            "rating_sum = rating_1 + 2 * rating_2 + 3 * rating_3 + 4 * rating_4 + 5 * rating_5",
            name=op.f("ck_vendor_rating_summaries_sum_matches_distribution"),
        ),
        sa.PrimaryKeyConstraint("vendor_id", name=op.f("pk_vendor_rating_summaries")),
        schema=SCHEMA,
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _timestamp("created_at"),
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
        _timestamp("handled_at"),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("vendor_rating_summaries", schema=SCHEMA)
    op.drop_index("ix_reviews_vendor_id_created_at", table_name="reviews", schema=SCHEMA)
    op.drop_table("reviews", schema=SCHEMA)
    op.drop_table("delivered_orders", schema=SCHEMA)
