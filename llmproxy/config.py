"""Settings read from the environment once and validated at start."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
# Where `make run` keeps instance/.env, the SQLite file and beat's schedule. Read before any settings
# exist (instance/.env is one of their sources); LLMPROXY_INSTANCE_DIR moves it (a second checkout, tests).
INSTANCE_DIR = Path(os.environ.get("LLMPROXY_INSTANCE_DIR") or ROOT / "instance")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_Number = TypeVar("_Number", int, float)


class ConfigError(Exception):
    """A required setting is missing or malformed; the message names it in one line."""


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know about its deployment."""

    encryption_key: bytes
    admin_api_key: str
    database_url: str
    redis_url: str | None = None
    host: str = "127.0.0.1"  # the address `make run` binds; the Procfile's web role binds its own HOST
    port: int = 3000
    metrics_token: str | None = None  # when set, /metrics needs it and /readyz shows details only with it
    max_request_bytes: int = 10 * 1024 * 1024
    sync_timeout_seconds: float = 600.0
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 120.0
    retry_attempts: int = 2
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 20.0
    routing_strategy: str = "weighted"  # how a model's deployments share its calls: weighted | least_busy
    deployment_cooldown_seconds: float = 5.0  # a failing deployment's rest when the provider gives no Retry-After
    job_lease_seconds: float = 30.0
    reservation_ttl_seconds: float = 600.0  # a cost reservation's life unrenewed: renewed with its job's lease
    catalog_ttl_seconds: float = 1.0
    default_max_tokens: int = 4096
    batch_limit_share: float = 0.8
    max_batch_file_bytes: int = 200 * 1024 * 1024
    max_batch_lines: int = 50_000
    batch_completion_window_seconds: float = 24 * 3600.0
    batch_lost_after_seconds: float = 60.0
    batch_finalize_stall_seconds: float = 300.0
    retention_days: float = 30.0
    default_max_parallel_requests: int | None = None  # a key's requests in flight; None: no cap
    default_max_queued_jobs: int | None = 100_000  # a key's async jobs and batch lines not yet ended; None: no cap
    default_file_storage_bytes: int | None = 10 * 1024**3  # a key's uploaded, unexpired files; None: no quota
    provider_keys: Mapping[str, str] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (tests and tools)."""
        return replace(self, **changes)


def normalize_database_url(url: str) -> str:
    """Make `postgresql://` and `postgres://` URLs use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def default_database_url() -> str:
    """The SQLite file under instance/ used when DATABASE_URL is unset."""
    return f"sqlite:///{INSTANCE_DIR / 'llmproxy.db'}"


def _number(env: Mapping[str, str], name: str, default: _Number, kind: Callable[[str], _Number]) -> _Number:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _share(env: Mapping[str, str]) -> float:
    share = _number(env, "BATCH_LIMIT_SHARE", 0.8, float)
    if not 0 < share <= 1:
        raise ConfigError("BATCH_LIMIT_SHARE must be in (0, 1]")
    return share


def _at_most(env: Mapping[str, str], name: str, ceiling: int) -> int:
    # OpenAI's own batch limits are the ceiling; operators may only lower them.
    value = _number(env, name, ceiling, int)
    if not 1 <= value <= ceiling:
        raise ConfigError(f"{name} must be from 1 to {ceiling}")
    return value


def _at_least_one(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default, int)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value


def _reservation_ttl(env: Mapping[str, str]) -> float:
    # A running job's reservation is renewed with its lease (every third of one): it must outlive a lease.
    ttl = _number(env, "RESERVATION_TTL_SECONDS", 600.0, float)
    if ttl < _number(env, "JOB_LEASE_SECONDS", 30.0, float) or ttl <= 0:
        raise ConfigError("RESERVATION_TTL_SECONDS must be positive and at least JOB_LEASE_SECONDS")
    return ttl


def _retention(env: Mapping[str, str]) -> float:
    days = _number(env, "RETENTION_DAYS", 30.0, float)
    if days < 1:
        # Idempotency-Keys are promised for 24 h: their jobs must outlive that.
        raise ConfigError("RETENTION_DAYS must be at least 1 (Idempotency-Keys are kept 24 h)")
    return days


def _cap(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    # 0 turns a default cap off; unset keeps the default.
    value = _number(env, name, -1, int)
    return default if value < 0 else value or None


def _host(env: Mapping[str, str]) -> str:
    host = env.get("HOST", "").strip().removeprefix("[").removesuffix("]") or "127.0.0.1"  # "[::]" is "::"
    if any(c.isspace() or c in "/[]@" for c in host):
        raise ConfigError(f"HOST is malformed: it must be an address or a host name such as 127.0.0.1, got {host!r}")
    return host


def _metrics_token(env: Mapping[str, str]) -> str | None:
    token = env.get("METRICS_TOKEN", "").strip()
    if not token:
        return None
    if len(token) < 16:
        raise ConfigError("METRICS_TOKEN is malformed: it must be at least 16 characters")
    return token


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate Settings from the environment; raise ConfigError naming the bad setting."""
    env = os.environ if env is None else env
    key_hex = env.get("ENCRYPTION_KEY", "").strip()
    if not key_hex:
        raise ConfigError("ENCRYPTION_KEY is not set (64 hex characters; `make run` writes one to instance/.env)")
    if not _HEX64.match(key_hex):
        raise ConfigError("ENCRYPTION_KEY is malformed: it must be 64 hex characters (32 bytes for AES-256)")
    admin = env.get("ADMIN_API_KEY", "").strip()
    if not admin:
        raise ConfigError("ADMIN_API_KEY is not set (`make run` writes one to instance/.env)")
    if len(admin) < 16:
        raise ConfigError("ADMIN_API_KEY is malformed: it must be at least 16 characters")
    if env.get("IV"):
        log.warning("IV is set but ignored: every stored value gets its own nonce")
    env_keys = (("openai", "OPENAI_API_KEY"), ("mistral", "MISTRAL_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"))
    provider_keys = {name: env[var] for name, var in env_keys if env.get(var)}
    return Settings(
        encryption_key=bytes.fromhex(key_hex),
        admin_api_key=admin,
        database_url=normalize_database_url(env.get("DATABASE_URL") or default_database_url()),
        redis_url=env.get("REDIS_URL") or None,
        host=_host(env),
        port=_number(env, "PORT", 3000, int),
        metrics_token=_metrics_token(env),
        max_request_bytes=_number(env, "MAX_REQUEST_BYTES", 10 * 1024 * 1024, int),
        sync_timeout_seconds=_number(env, "SYNC_TIMEOUT_SECONDS", 600.0, float),
        upstream_connect_timeout=_number(env, "UPSTREAM_CONNECT_TIMEOUT", 5.0, float),
        upstream_read_timeout=_number(env, "UPSTREAM_READ_TIMEOUT", 120.0, float),
        retry_attempts=_number(env, "RETRY_ATTEMPTS", 2, int),
        retry_base_seconds=_number(env, "RETRY_BASE_SECONDS", 0.5, float),
        retry_max_seconds=_number(env, "RETRY_MAX_SECONDS", 20.0, float),
        routing_strategy=_routing_strategy(env),
        deployment_cooldown_seconds=_number(env, "DEPLOYMENT_COOLDOWN_SECONDS", 5.0, float),
        job_lease_seconds=_number(env, "JOB_LEASE_SECONDS", 30.0, float),
        reservation_ttl_seconds=_reservation_ttl(env),
        catalog_ttl_seconds=_number(env, "CATALOG_TTL_SECONDS", 1.0, float),
        default_max_tokens=_at_least_one(env, "DEFAULT_MAX_TOKENS", 4096),
        batch_limit_share=_share(env),
        max_batch_file_bytes=_at_most(env, "MAX_BATCH_FILE_BYTES", 200 * 1024 * 1024),
        max_batch_lines=_at_most(env, "MAX_BATCH_LINES", 50_000),
        batch_completion_window_seconds=_number(env, "BATCH_COMPLETION_WINDOW_SECONDS", 24 * 3600.0, float),
        batch_lost_after_seconds=_number(env, "BATCH_LOST_AFTER_SECONDS", 60.0, float),
        batch_finalize_stall_seconds=_number(env, "BATCH_FINALIZE_STALL_SECONDS", 300.0, float),
        retention_days=_retention(env),
        default_max_parallel_requests=_cap(env, "DEFAULT_MAX_PARALLEL_REQUESTS", None),
        default_max_queued_jobs=_cap(env, "DEFAULT_MAX_QUEUED_JOBS", 100_000),
        default_file_storage_bytes=_cap(env, "DEFAULT_FILE_STORAGE_BYTES", 10 * 1024**3),
        provider_keys=provider_keys,
    )


def _routing_strategy(env: Mapping[str, str]) -> str:
    value = (env.get("ROUTING_STRATEGY") or "weighted").strip()
    if value not in ("weighted", "least_busy"):
        raise ConfigError(f"ROUTING_STRATEGY is malformed: '{value}' is not weighted or least_busy")
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (comments and blank lines ignored)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip().strip("'\"")
    return values


def load_env_file(path: Path | None = None) -> None:
    """Put instance/.env values into os.environ without overriding what is already set."""
    for name, value in read_env_file(path or INSTANCE_DIR / ".env").items():
        os.environ.setdefault(name, value)
