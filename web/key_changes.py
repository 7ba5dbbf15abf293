"""A key's revocation or new allowed models reaching its work in flight: one place for the admin API and dashboard."""

from __future__ import annotations

import logging

import redis

from llmproxy.jobs import events, key_changes
from llmproxy.storage.models import ApiKey
from web.context import announce_config_change, commit, db, resources

log = logging.getLogger(__name__)


def reach_work_in_flight(key: ApiKey) -> None:
    """A revocation or new allowed models reach the key's queued and running work (llmproxy.jobs.key_changes)."""
    announce_config_change()  # committed and announced first: from here on no worker starts it under the old rules
    client = resources().redis
    try:
        failed = key_changes.stop_disallowed_work(db(), client, key)
        commit()
        events.publish_many(client, failed)  # wake their long-polls
    except redis.RedisError:
        # The change is stored: queued work is refused when a worker reaches it; running work finishes.
        log.warning("could not reach the work in flight of key %s", key.id, exc_info=True)
