"""Importing LiteLLM's price file: exact Decimal prices per 1M, only configured models unless asked, dry runs write nothing."""

import json
from decimal import Decimal

import pytest

from llmproxy.catalog import model_config, prices_import
from llmproxy.errors import ApiError
from llmproxy.storage.engine import session_scope
from tests.support.cli import cli
from tests.support.records import snapshot

# Written as text so the numbers reach the importer exactly as LiteLLM spells them.
PRICES_JSON = """{
    "sample_spec": {
        "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "max_input_tokens": "max input tokens, if the provider specifies it. if not default to max_tokens",
        "max_tokens": "LEGACY parameter.", "mode": "one of: chat, embedding, completion"
    },
    "gpt-3.5-turbo": {
        "input_cost_per_token": 1.7e-07, "output_cost_per_token": 1.5e-06,
        "litellm_provider": "openai", "max_input_tokens": 16385, "max_output_tokens": 4096, "max_tokens": 4096,
        "mode": "chat"
    },
    "gpt-4": {
        "input_cost_per_token": 3e-05, "output_cost_per_token": 6e-05,
        "litellm_provider": "openai", "max_input_tokens": 8192, "max_tokens": 4096, "mode": "chat"
    },
    "azure/gpt-4": {
        "input_cost_per_token": 9e-05, "output_cost_per_token": 9e-05,
        "litellm_provider": "azure", "max_input_tokens": 8192, "mode": "chat"
    },
    "mistral/mistral-tiny": {
        "cache_read_input_token_cost": 1.23456789012345678e-08,
        "input_cost_per_token": 2.5e-07, "output_cost_per_token": 2.5e-07,
        "litellm_provider": "mistral", "max_tokens": 8191, "mode": "chat"
    },
    "mistral/mistral-small": {
        "litellm_provider": "mistral", "mode": "image_generation", "output_cost_per_image": 0.04
    },
    "gpt-4o-mini": {
        "cache_read_input_token_cost": 7.5e-08, "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
        "litellm_provider": "openai", "max_input_tokens": 128000, "max_tokens": 16384, "mode": "chat"
    },
    "text-embedding-ada-002": {
        "input_cost_per_token": 1e-07, "output_cost_per_token": 0.0,
        "litellm_provider": "openai", "max_input_tokens": 8191, "mode": "embedding"
    },
    "mistral/open-mixtral-8x7b": {
        "input_cost_per_token": 7e-07, "output_cost_per_token": 7e-07,
        "litellm_provider": "mistral", "max_input_tokens": 32000, "mode": "chat"
    }
}"""


@pytest.fixture
def prices_file(tmp_path):
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(PRICES_JSON)
    return str(path)


def model_row(session_factory, name):
    with session_factory() as s:
        m = model_config.find_model(s, name)
        return m and (
            m.input_cost_per_1m,
            m.output_cost_per_1m,
            m.cached_input_cost_per_1m,
            m.context_window,
            m.provider.name,
            m.upstream_model,
        )


def test_load_skips_sample_spec_and_parses_exact_decimals():
    entries = prices_import.load_prices(PRICES_JSON)
    assert "sample_spec" not in entries and len(entries) == 8
    assert entries["gpt-3.5-turbo"]["output_cost_per_token"] == Decimal("1.5e-06")
    fields = prices_import.entry_fields(entries["gpt-3.5-turbo"])
    assert fields == {
        "input_cost_per_1m": Decimal("0.17"),
        "output_cost_per_1m": Decimal("1.5"),
        "context_window": 16385,
    }
    # Per-token prices × 1,000,000 at the ledger's 12 decimals (half-even), never through a float.
    assert prices_import.entry_fields(entries["mistral/mistral-tiny"])["cached_input_cost_per_1m"] == Decimal(
        "0.012345678901"
    )
    with pytest.raises(ValueError):
        prices_import.entry_fields(entries["mistral/mistral-small"])
    for bad in ("[1, 2]", '{"x": ', ""):
        with pytest.raises(ApiError):
            prices_import.load_prices(bad)


def test_cache_creation_price_is_the_cache_write_price():
    entries = prices_import.load_prices(
        '{"claude-x": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,'
        ' "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06}}'
    )
    fields = prices_import.entry_fields(entries["claude-x"])
    assert (fields["cached_input_cost_per_1m"], fields["cache_write_cost_per_1m"]) == (Decimal("0.3"), Decimal("3.75"))


@pytest.mark.parametrize(
    "spec",
    [
        {"input_cost_per_token": Decimal("-1e-06"), "output_cost_per_token": 1},
        {"input_cost_per_token": "1e-06", "output_cost_per_token": 1e-06},
        {"input_cost_per_token": True, "output_cost_per_token": 1e-06},
        {"input_cost_per_token": float("nan"), "output_cost_per_token": 1e-06},
        {"input_cost_per_token": Decimal("1e20"), "output_cost_per_token": 1e-06},
        {"input_cost_per_token": Decimal("1e-06")},
    ],
)
def test_unusable_entries_are_refused(spec):
    with pytest.raises(ValueError):
        prices_import.entry_fields(spec)


def test_import_updates_configured_models_only(db):
    with session_scope(db) as s:
        report = prices_import.import_prices(s, prices_import.load_prices(PRICES_JSON))
    assert report["updated"] == [
        {
            "model": "gpt-3.5-turbo",
            "entry": "gpt-3.5-turbo",
            "changes": {
                "input_cost_per_1m": {"from": "1.5", "to": "0.17"},
                "output_cost_per_1m": {"from": "2", "to": "1.5"},
            },
        },
        {
            "model": "mistral-tiny",
            "entry": "mistral/mistral-tiny",
            "changes": {
                "input_cost_per_1m": {"from": "0.15", "to": "0.25"},
                "output_cost_per_1m": {"from": "0.75", "to": "0.25"},
                "cached_input_cost_per_1m": {"from": None, "to": "0.012345678901"},
                "context_window": {"from": 32000, "to": 8191},
            },
        },
    ]
    assert report["unchanged"] == ["gpt-4"]  # and azure/gpt-4's prices never reach the OpenAI model
    assert report["skipped"] == [
        {"model": "mistral-small", "entry": "mistral/mistral-small", "reason": "no per-token input and output prices"}
    ]
    assert report["models_without_entry"] == [
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "mistral-embed",
        "mistral-large",
        "mistral-medium",
        "text-embedding-3-large",
        "text-embedding-3-small",
    ]
    assert report["added"] == [] and report["entries_not_configured"] == 4
    assert model_row(db, "gpt-3.5-turbo")[:4] == (Decimal("0.17"), Decimal("1.5"), None, 16385)
    assert model_row(db, "mistral-tiny")[:4] == (Decimal("0.25"), Decimal("0.25"), Decimal("0.012345678901"), 8191)
    assert model_row(db, "gpt-4")[:2] == (Decimal("30"), Decimal("60"))
    assert model_row(db, "gpt-4o-mini") is None


def test_add_missing_creates_the_providers_chat_and_embedding_models(db):
    with session_scope(db) as s:
        report = prices_import.import_prices(
            s, prices_import.load_prices(PRICES_JSON), add_missing=True, provider="openai"
        )
    assert [(a["model"], a["mode"]) for a in report["added"]] == [
        ("gpt-4o-mini", "chat"),
        ("text-embedding-ada-002", "embedding"),
    ]
    assert model_row(db, "text-embedding-ada-002") == (
        Decimal("0.1"),
        Decimal("0"),
        None,
        8191,
        "openai",
        "text-embedding-ada-002",
    )
    with db() as s:
        assert model_config.find_model(s, "text-embedding-ada-002").mode == "embedding"
    assert model_row(db, "gpt-4o-mini") == (
        Decimal("0.15"),
        Decimal("0.6"),
        Decimal("0.075"),
        128000,
        "openai",
        "gpt-4o-mini",
    )
    assert model_row(db, "open-mixtral-8x7b") is None
    with session_scope(db) as s:
        again = prices_import.import_prices(
            s, prices_import.load_prices(PRICES_JSON), add_missing=True, provider="mistral"
        )
    # The LiteLLM provider prefix is dropped: the upstream API knows the model by its bare name.
    assert [(a["model"], a["entry"]) for a in again["added"]] == [("open-mixtral-8x7b", "mistral/open-mixtral-8x7b")]
    assert again["updated"] == [] and "gpt-4o-mini" in again["unchanged"]
    assert model_row(db, "open-mixtral-8x7b")[3:] == (32000, "mistral", "open-mixtral-8x7b")


def test_cli_dry_run_changes_nothing_then_import_applies(env, db, prices_file):
    before = snapshot(db)
    dry = json.loads(
        cli(env, "prices", "import", prices_file, "--add-missing", "--provider", "openai", "--dry-run").stdout
    )
    assert dry["dry_run"] is True
    assert [u["model"] for u in dry["updated"]] == ["gpt-3.5-turbo", "mistral-tiny"]
    assert dry["added"] == [
        {
            "model": "gpt-4o-mini",
            "entry": "gpt-4o-mini",
            "provider": "openai",
            "upstream_model": "gpt-4o-mini",
            "mode": "chat",
            "input_cost_per_1m": "0.15",
            "output_cost_per_1m": "0.6",
            "cached_input_cost_per_1m": "0.075",
            "context_window": 128000,
        },
        {
            "model": "text-embedding-ada-002",
            "entry": "text-embedding-ada-002",
            "provider": "openai",
            "upstream_model": "text-embedding-ada-002",
            "mode": "embedding",
            "input_cost_per_1m": "0.1",
            "output_cost_per_1m": "0",
            "context_window": 8191,
        },
    ]
    assert snapshot(db) == before and model_row(db, "gpt-4o-mini") is None

    done = json.loads(cli(env, "prices", "import", prices_file, "--add-missing", "--provider", "openai").stdout)
    assert {**done, "dry_run": True} == dry  # the dry run reported exactly what the import did
    assert model_row(db, "gpt-4o-mini")[:4] == (Decimal("0.15"), Decimal("0.6"), Decimal("0.075"), 128000)
    listed = {m["name"]: m for m in json.loads(cli(env, "models", "list").stdout)}
    assert (listed["gpt-3.5-turbo"]["input_cost_per_1m"], listed["gpt-3.5-turbo"]["output_cost_per_1m"]) == (
        "0.17",
        "1.5",
    )

    rerun = json.loads(cli(env, "prices", "import", prices_file).stdout)
    assert rerun["updated"] == [] and rerun["added"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--add-missing"], "provider"),
        (["--add-missing", "--provider", "nowhere"], "No such provider"),
        (["--provider", "openai"], "only used when adding"),
        (["--litellm-provider", "openai"], "only used with --add-missing"),
    ],
)
def test_cli_bad_options_change_nothing(env, db, prices_file, args, message):
    before = snapshot(db)
    bad = cli(env, "prices", "import", prices_file, *args, ok=False)
    assert bad.returncode == 1 and message in bad.stderr
    assert snapshot(db) == before


def test_cli_bad_file(env, db, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"gpt-4": {"input_cost_per_token": 1e-06,')
    bad = cli(env, "prices", "import", str(broken), ok=False)
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr
    assert cli(env, "prices", "import", str(tmp_path / "missing.json"), ok=False).returncode == 2
