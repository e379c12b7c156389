"""Paged lists: the page holds the right rows in order and the total counts them all."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.pagination import Page, PageParams, fetch_page

numbers = Table(
    "numbers", MetaData(), Column("n", Integer, primary_key=True), prefixes=["TEMPORARY"]
)


@pytest.mark.schema("users")
async def test_fetch_page_returns_the_ordered_slice_and_the_full_total(
    rollback_session: AsyncSession,
) -> None:
    await rollback_session.run_sync(lambda s: numbers.create(s.connection()))
    await rollback_session.execute(insert(numbers), [{"n": n} for n in range(1, 46)])
    statement = select(numbers.c.n).where(numbers.c.n > 5).order_by(numbers.c.n.desc())

    rows, total = await fetch_page(rollback_session, statement, PageParams(page=2, page_size=10))
    assert total == 40
    assert list(rows) == list(range(35, 25, -1))

    last, _ = await fetch_page(rollback_session, statement, PageParams(page=4, page_size=10))
    assert list(last) == list(range(15, 5, -1))
    beyond, total_beyond = await fetch_page(
        rollback_session, statement, PageParams(page=9, page_size=10)
    )
    assert list(beyond) == []
    assert total_beyond == 40


def test_page_echoes_its_parameters() -> None:
    page = Page[int].of([1, 2], PageParams(page=3, page_size=2), total=7)
    assert page.model_dump() == {"items": [1, 2], "page": 3, "page_size": 2, "total": 7}
    assert PageParams(page=3, page_size=25).offset == 50
