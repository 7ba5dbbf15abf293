"""The part of an in-flight job that never changes: what the web hands over and the worker runs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal

from llmproxy.jobs.records import dumps, from_epoch_ms
from llmproxy.jobs.timing import ms
from llmproxy.jsontypes import JSON
from llmproxy.storage.models import Job


@dataclass(frozen=True)
class LiveJob:
    """What a worker needs to run a job and the writer to store it: the job's part that never changes."""

    id: str
    api_key_id: str
    model: str
    queue: str
    request: JSON
    stream: bool = False
    meta: JSON | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    created_at_ms: int = 0
    stored: bool = False
    operation: str = "chat"  # "chat" or "embeddings" (llmproxy.operations)

    def dumps(self) -> str:
        """The static JSON kept in the live hash and copied into the job's record."""
        return dumps(
            {
                "api_key_id": self.api_key_id,
                "model": self.model,
                "queue": self.queue,
                "request": self.request,
                "stream": self.stream,
                "meta": self.meta,
                "batch_id": self.batch_id,
                "custom_id": self.custom_id,
                "created_at": self.created_at_ms,
                "stored": self.stored,
                "operation": self.operation,
            }
        )

    @classmethod
    def loads(cls, job_id: str, raw: bytes | str) -> LiveJob:
        """The static part back from its JSON."""
        data = json.loads(raw)
        return cls(
            id=job_id,
            api_key_id=data["api_key_id"],
            model=data["model"],
            queue=data["queue"],
            request=data["request"],
            stream=bool(data.get("stream")),
            meta=data.get("meta"),
            batch_id=data.get("batch_id"),
            custom_id=data.get("custom_id"),
            created_at_ms=int(data.get("created_at") or 0),
            stored=bool(data.get("stored")),
            operation=data.get("operation") or "chat",  # a job handed over before operations existed: chat
        )

    @classmethod
    def of_row(cls, job: Job) -> LiveJob:
        """The live part of a stored job's row."""
        created = job.created_at.timestamp() if job.created_at else time.time()
        return cls(
            id=job.id,
            api_key_id=job.api_key_id,
            model=job.model,
            queue=job.queue,
            request=job.request,
            stream=job.stream,
            meta=job.meta,
            batch_id=job.batch_id,
            custom_id=job.custom_id,
            created_at_ms=ms(created),
            stored=True,
            operation=job.operation,
        )

    def as_job(self, *, status: str, run: int, started_at_ms: int | None = None, final: JSON | None = None) -> Job:
        """A detached Job object (never added to a session) as the API and the executor read jobs."""
        final = final or {}
        return Job(
            id=self.id,
            api_key_id=self.api_key_id,
            model=self.model,
            status=status,
            queue=self.queue,
            operation=self.operation,
            stream=self.stream,
            request=self.request,
            meta=self.meta,
            batch_id=self.batch_id,
            custom_id=self.custom_id,
            result=final.get("result"),
            error=final.get("error"),
            error_status=final.get("error_status"),
            attempts=final.get("attempts") or [],
            usage=final.get("usage"),
            cost_usd=Decimal(final["cost_usd"]) if final.get("cost_usd") else None,
            served_model=final.get("served_model"),
            served_provider=final.get("served_provider"),
            run_count=run,
            cancel_requested=False,
            created_at=from_epoch_ms(self.created_at_ms),
            started_at=from_epoch_ms(started_at_ms),
            completed_at=from_epoch_ms(final.get("completed_at")),
        )
