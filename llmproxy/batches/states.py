"""The states of a batch, as OpenAI's batch object names them."""

from __future__ import annotations

from enum import StrEnum


class BatchStatus(StrEnum):
    """validating → in_progress → finalizing → completed; or failed, expired, cancelling → cancelled."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


RUNNING_BATCH_STATUSES = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING)  # lines may still run
FINAL_BATCH_STATUSES = (BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED)
