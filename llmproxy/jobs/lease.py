"""A running job's lease: renewed in the background so the sweeper knows the run is alive."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from llmproxy.jobs import store
from llmproxy.storage.engine import session_scope

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the job's lease in the background while a run is alive, so the sweeper leaves it alone."""

    def __init__(self, session_factory: sessionmaker[Session], job_id: str, run: int, lease_seconds: float) -> None:
        self._stop = threading.Event()
        self._args = (session_factory, job_id, run, lease_seconds)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        session_factory, job_id, run, lease = self._args
        while not self._stop.wait(lease / 3):
            try:
                with session_scope(session_factory) as session:
                    if not store.renew_lease(session, job_id, run, lease_seconds=lease):
                        return
            except Exception:
                log.warning("could not renew lease of %s", job_id, exc_info=True)
