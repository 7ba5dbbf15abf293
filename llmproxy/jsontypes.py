"""The type of a JSON object as the gateway handles it: request bodies, responses, error objects."""

from __future__ import annotations

from typing import Any, TypeAlias

# Values are Any, not a recursive JSON union: every reader checks the shape it needs (isinstance) anyway.
JSON: TypeAlias = dict[str, Any]
