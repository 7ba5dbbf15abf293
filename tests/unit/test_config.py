"""Settings are validated when loaded: a bad one is a ConfigError of one line naming it."""

import pytest

from llmproxy.config import ConfigError, load_settings, normalize_database_url

GOOD = {"ENCRYPTION_KEY": "ab" * 32, "ADMIN_API_KEY": "x" * 20}


@pytest.mark.parametrize(
    "env, name",
    [
        ({"ADMIN_API_KEY": "x" * 20}, "ENCRYPTION_KEY"),
        ({**GOOD, "ENCRYPTION_KEY": "abc"}, "ENCRYPTION_KEY"),
        ({**GOOD, "ENCRYPTION_KEY": "zz" * 32}, "ENCRYPTION_KEY"),
        ({"ENCRYPTION_KEY": "ab" * 32}, "ADMIN_API_KEY"),
        ({**GOOD, "ADMIN_API_KEY": "short"}, "ADMIN_API_KEY"),
        ({**GOOD, "PORT": "eighty"}, "PORT"),
        ({**GOOD, "METRICS_TOKEN": "too-short"}, "METRICS_TOKEN"),
        ({**GOOD, "HOST": "127.0.0.1 0.0.0.0"}, "HOST"),
        ({**GOOD, "HOST": "http://example.com"}, "HOST"),
        ({**GOOD, "DEFAULT_MAX_TOKENS": "0"}, "DEFAULT_MAX_TOKENS"),
        ({**GOOD, "RESERVATION_TTL_SECONDS": "0"}, "RESERVATION_TTL_SECONDS"),
        ({**GOOD, "RESERVATION_TTL_SECONDS": "20", "JOB_LEASE_SECONDS": "30"}, "RESERVATION_TTL_SECONDS"),
    ],
)
def test_bad_settings_name_the_variable(env, name):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert name in str(info.value)
    assert "\n" not in str(info.value)


def test_postgres_urls_use_psycopg3():
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert load_settings({**GOOD, "DATABASE_URL": "postgresql://u@h/db"}).database_url.startswith("postgresql+psycopg")


def test_iv_is_ignored_with_a_warning(caplog):
    settings = load_settings({**GOOD, "IV": "00" * 16})
    assert settings.encryption_key == bytes.fromhex("ab" * 32)
    assert "IV is set but ignored" in caplog.text


def test_host_is_loopback_unless_set_and_metrics_token_is_optional():
    default = load_settings(GOOD)
    assert (default.host, default.metrics_token) == ("127.0.0.1", None)
    assert load_settings({**GOOD, "HOST": "0.0.0.0"}).host == "0.0.0.0"
    assert load_settings({**GOOD, "HOST": "[::]"}).host == "::"  # as the Procfile's --bind spells it
    assert load_settings({**GOOD, "METRICS_TOKEN": " " + "m" * 16 + " "}).metrics_token == "m" * 16
    assert load_settings({**GOOD, "METRICS_TOKEN": ""}).metrics_token is None


def test_a_reservation_lives_ten_minutes_unrenewed_by_default_and_at_least_a_lease():
    assert load_settings(GOOD).reservation_ttl_seconds == 600
    assert (
        load_settings({**GOOD, "RESERVATION_TTL_SECONDS": "2", "JOB_LEASE_SECONDS": "1"}).reservation_ttl_seconds == 2
    )


def test_the_file_storage_quota_defaults_to_10_gib_and_0_turns_it_off():
    assert load_settings(GOOD).default_file_storage_bytes == 10 * 1024**3
    assert load_settings({**GOOD, "DEFAULT_FILE_STORAGE_BYTES": "5000"}).default_file_storage_bytes == 5000
    assert load_settings({**GOOD, "DEFAULT_FILE_STORAGE_BYTES": "0"}).default_file_storage_bytes is None
