"""What a route declares about itself for the OpenAPI document: who may call it, what it takes, what it answers.

The schemas it names are the code's own: those of the checks that read the input (llmproxy.json_schema) and
those kept beside the builders of the response objects. `web.openapi.document` walks the app's routes and
refuses a route that declares nothing, so a new route cannot be left out of the document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from llmproxy.json_schema import Schema

F = TypeVar("F", bound=Callable[..., Any])
JSON_MEDIA = "application/json"


class Auth(StrEnum):
    """Who may call a route."""

    NONE = "none"
    KEY = "key"  # a virtual key
    ADMIN = "admin"  # ADMIN_API_KEY
    KEY_OR_ADMIN = "key_or_admin"  # the original proxy's /api/save-keys
    METRICS = "metrics"  # METRICS_TOKEN, when one is set


@dataclass(frozen=True)
class Reply:
    """One successful answer: what it means, its body's schema by media type, and the headers it carries."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # name → description


def json_reply(description: str, schema: Schema, **headers: str) -> Reply:
    """A JSON answer (headers given as keyword arguments, underscores for dashes)."""
    return Reply(description, {JSON_MEDIA: schema}, {name.replace("_", "-"): text for name, text in headers.items()})


@dataclass(frozen=True)
class Operation:
    """A route's declaration; the summary is its view's docstring line."""

    auth: Auth
    replies: Mapping[int, Reply]
    body: Schema | None = None
    body_media: str = JSON_MEDIA
    body_required: bool = True
    query: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, Schema] = field(default_factory=dict)


def operation(
    *,
    auth: Auth,
    replies: Mapping[int, Reply],
    body: Schema | None = None,
    body_media: str = JSON_MEDIA,
    body_required: bool = True,
    query: Mapping[str, Schema] | None = None,
    headers: Mapping[str, Schema] | None = None,
) -> Callable[[F], F]:
    """Declare a view's operation for the OpenAPI document."""
    declared = Operation(
        auth=auth,
        replies=replies,
        body=body,
        body_media=body_media,
        body_required=body_required,
        query=query or {},
        headers=headers or {},
    )

    def attach(view: F) -> F:
        view.openapi = declared  # type: ignore[attr-defined]  # read by web.openapi.document
        return view

    return attach


def declared_operation(view: Callable[..., Any]) -> Operation | None:
    """The operation a view declared, or None."""
    found: Operation | None = getattr(view, "openapi", None)
    return found
