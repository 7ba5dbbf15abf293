"""Cursor pagination as OpenAI lists do it: by creation time (then id), after a given object."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from llmproxy.storage.models import Batch, Job, StoredFile

# The listed objects: each has `created_at` and a string `id`, the two keys of the order.
_Listed = TypeVar("_Listed", Job, Batch, StoredFile)


def page_after(
    session: Session,
    query: Select[_Listed],
    model: type[_Listed],
    *,
    cursor: _Listed | None,
    limit: int,
    newest_first: bool = True,
) -> tuple[list[_Listed], bool]:
    """Rows of `query` beyond the `cursor` row (or from the start), at most `limit`; returns (rows, has_more)."""
    created, ident = model.created_at, model.id
    if cursor is not None:
        if newest_first:
            beyond = or_(created < cursor.created_at, and_(created == cursor.created_at, ident < cursor.id))
        else:
            beyond = or_(created > cursor.created_at, and_(created == cursor.created_at, ident > cursor.id))
        query = query.where(beyond)
    order = (created.desc(), ident.desc()) if newest_first else (created.asc(), ident.asc())
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
