"""Typed SQLAlchemy 2.x models: configuration (providers, models, keys) and records (jobs, ledger)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from llmproxy.storage.money import Money
from llmproxy.storage.timestamps import utcnow


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Provider(Base):
    """An upstream provider: how to reach it and its default (encrypted) key."""

    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    api_base: Mapped[str] = mapped_column(String(512))
    api_key_enc: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Deployment(Base):
    """One place a model is served: a provider (its base URL and key unless overridden), an upstream name, a weight."""

    __tablename__ = "deployments"
    # Ids are never reused (SQLite reuses a deleted row's by default): the ledger and health in Redis name them.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="RESTRICT"))
    # NULL: the provider's api_base / key; set: this deployment's own endpoint or account.
    api_base: Mapped[str | None] = mapped_column(String(512))
    api_key_enc: Mapped[str | None] = mapped_column(Text)
    upstream_model: Mapped[str] = mapped_column(String(128))
    weight: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    provider: Mapped[Provider] = relationship(lazy="joined")
    model: Mapped[ModelConfig] = relationship(back_populates="deployments")


class ModelConfig(Base):
    """A model callers may ask for: its deployments (where it is served), its prices and its fallback chain."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # What the model does: "chat" (chat completions) or "embedding" (embeddings); a request for the other is refused.
    mode: Mapped[str] = mapped_column(String(16), default="chat", server_default="chat")
    fallbacks: Mapped[list[str]] = mapped_column(JSON, default=list)
    input_cost_per_1m: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    output_cost_per_1m: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    cached_input_cost_per_1m: Mapped[Decimal | None] = mapped_column(Money)
    # Writing a prompt cache entry (Anthropic) costs more than plain input; NULL: the input price.
    cache_write_cost_per_1m: Mapped[Decimal | None] = mapped_column(Money)
    context_window: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    # Ordered by id: the first is the model's own `provider`/`upstream_model` (API.md); loaded with the model.
    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="model", order_by="Deployment.id", lazy="selectin", cascade="all, delete-orphan"
    )

    @property
    def first_deployment(self) -> Deployment:
        """The deployment shown as the model's provider and upstream model (a model always has one)."""
        return self.deployments[0]

    @property
    def provider(self) -> Provider:
        """The first deployment's provider."""
        return self.first_deployment.provider

    @property
    def upstream_model(self) -> str:
        """The first deployment's upstream model name."""
        return self.first_deployment.upstream_model


class ApiKey(Base):
    """A virtual key: only its SHA-256 hash and a display prefix are stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    budget_usd: Mapped[Decimal | None] = mapped_column(Money)
    spend_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    # Fair use; NULL means the deployment's default (DEFAULT_MAX_PARALLEL_REQUESTS, DEFAULT_MAX_QUEUED_JOBS).
    max_parallel_requests: Mapped[int | None] = mapped_column(Integer)
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer)
    # Bytes of uploaded files the key may keep; NULL: DEFAULT_FILE_STORAGE_BYTES; 0: no quota for this key.
    max_file_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class KeyCredential(Base):
    """A caller's own key for one provider, encrypted."""

    __tablename__ = "key_credentials"
    __table_args__ = (UniqueConstraint("api_key_id", "provider_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    api_key_enc: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Job(Base):
    """One completion request and everything that happened to it; the source of truth for its result."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key"),
        Index("ix_jobs_key_created", "api_key_id", "created_at"),
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_batch_status", "batch_id", "status"),
        # A batch's lines are created once: a validation that runs twice cannot store a line twice.
        Index(
            "ux_jobs_batch_custom_id",
            "batch_id",
            "custom_id",
            unique=True,
            postgresql_where=text("batch_id IS NOT NULL"),
            sqlite_where=text("batch_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    model: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    queue: Mapped[str] = mapped_column(String(16), default="interactive")
    # Which API the request is for: "chat" (chat completions) or "embeddings".
    operation: Mapped[str] = mapped_column(String(16), default="chat", server_default="chat")
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    batch_id: Mapped[str | None] = mapped_column(String(40), index=True)
    custom_id: Mapped[str | None] = mapped_column(String(512))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_status: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cost_usd: Mapped[Decimal | None] = mapped_column(Money)
    served_model: Mapped[str | None] = mapped_column(String(128))
    served_provider: Mapped[str | None] = mapped_column(String(64))
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a task for this job was last sent (batch lines); the sweeper's clue to a lost message.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UsageEntry(Base):
    """One billed job in the usage ledger: enough to recompute its cost. `job_id` is unique: billed once."""

    __tablename__ = "usage_ledger"
    __table_args__ = (Index("ix_usage_key_created", "api_key_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # No foreign key: the ledger is the accounting record and outlives its job (see llmproxy.retention).
    job_id: Mapped[str] = mapped_column(String(40), unique=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    model_requested: Mapped[str] = mapped_column(String(128))
    model_served: Mapped[str | None] = mapped_column(String(128))
    provider_served: Mapped[str | None] = mapped_column(String(64))
    # No foreign key: a deployment may be removed, its ledger rows stay.
    deployment_id: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    input_cost_per_1m: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    output_cost_per_1m: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    cached_input_cost_per_1m: Mapped[Decimal | None] = mapped_column(Money)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_cost_per_1m: Mapped[Decimal | None] = mapped_column(Money)
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class StoredFile(Base):
    """An uploaded batch input, or a batch's output/error file; its bytes are its FileChunk rows."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_key_created", "api_key_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    size_bytes: Mapped[int] = mapped_column("bytes", BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="processed")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class FileChunk(Base):
    """Up to 1 MiB of a file's bytes (llmproxy.batches.file_chunks): a file is never one value in memory."""

    __tablename__ = "file_chunks"

    # No cascade: whoever deletes a file deletes its chunks first (the foreign key refuses it otherwise).
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Batch(Base):
    """An OpenAI-style batch: one job per input line; counts and result files are fixed when it ends."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_key_created", "api_key_id", "created_at"),
        Index("ix_batches_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(40))
    completion_window: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    errors: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    output_file_id: Mapped[str | None] = mapped_column(String(40))
    error_file_id: Mapped[str | None] = mapped_column(String(40))
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    in_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finalizing_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelling_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # OpenAI's `usage` object, fixed when the batch ends; computed from the ledger while it runs.
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # output_expires_after.seconds: the output and error files live this long (else RETENTION_DAYS).
    output_expires_seconds: Mapped[int | None] = mapped_column(Integer)
