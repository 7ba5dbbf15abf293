"""Job lifecycle: create, claim (idempotent), finish with billing exactly once, and find lost jobs."""

from __future__ import annotations

from sqlalchemy import bindparam

from llmproxy.storage.models import ApiKey, UsageEntry

_LEDGER, _KEYS = UsageEntry.__table__, ApiKey.__table__

_INSERT_LEDGER = _LEDGER.insert()

# Increment in SQL so concurrent jobs of one key never lose an update.
_ADD_SPEND = (
    _KEYS.update()
    .where(_KEYS.c.id == bindparam("p_key"))
    .values(spend_usd=_KEYS.c.spend_usd + bindparam("p_cost", type_=_KEYS.c.spend_usd.type))
)
