"""What a model does: chat completions or embeddings (a request for the other kind is refused)."""

from __future__ import annotations

CHAT, EMBEDDING = "chat", "embedding"
MODES = (CHAT, EMBEDDING)
