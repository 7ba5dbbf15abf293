"""Masking what looks like a credential in text an upstream wrote, before a log line or a caller sees it.

The adapters already remove the exact key they sent (`error_mapping.redact_error`); this catches the
rest: a provider echoing a masked or different key (`sk-...****1234`), a bearer token, an organisation
or project id, or any long opaque token (a Mistral key is 32 letters and digits).
"""

from __future__ import annotations

import re

MASK = "***"
_PATTERNS = (
    (re.compile(r"\bBearer\s+[^\s\"',;()]+", re.IGNORECASE), f"Bearer {MASK}"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-*.]+"), f"sk-{MASK}"),
    (re.compile(r"\b(org|proj)([-_])[A-Za-z0-9_\-]+"), rf"\1\2{MASK}"),
    (re.compile(r"\b[A-Za-z0-9_\-]{32,}"), MASK),
)


def mask_secrets(text: str) -> str:
    """`text` with every key-, token- or organisation-id-looking part replaced by ***."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
