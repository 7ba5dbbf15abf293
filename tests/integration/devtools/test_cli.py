"""The admin CLI does what the admin API does, against the same database."""

import json
import os
import subprocess
import sys

from sqlalchemy import text

from llmproxy.keys import crypto
from tests.support.cli import cli


def test_keys_providers_models_and_rotation(env, db):
    created = json.loads(cli(env, "keys", "create", "--name", "cli", "--rpm", "10", "--budget", "2.5").stdout)
    assert created["key"].startswith("sk-") and created["rpm_limit"] == 10 and created["budget_usd"] == "2.5"
    listed = json.loads(cli(env, "keys", "list").stdout)
    assert [k["id"] for k in listed] == [created["id"]]
    assert json.loads(cli(env, "keys", "revoke", created["id"]).stdout)["active"] is False

    cli(
        env,
        "providers",
        "add",
        "local",
        "--kind",
        "openai_compatible",
        "--api-base",
        "http://127.0.0.1:1/v1",
        "--api-key-stdin",
        stdin="sk-from-stdin\n",
    )
    cli(
        env,
        "models",
        "add",
        "llama",
        "--provider",
        "local",
        "--input-per-1m",
        "0.1",
        "--output-per-1m",
        "0.2",
        "--fallback",
        "mistral-tiny",
    )
    priced = json.loads(
        cli(env, "models", "set-price", "llama", "--input-per-1m", "0.3", "--output-per-1m", "0.4").stdout
    )
    assert (priced["input_cost_per_1m"], priced["output_cost_per_1m"], priced["fallbacks"]) == (
        "0.3",
        "0.4",
        ["mistral-tiny"],
    )

    bad = cli(env, "models", "edit", "mistral-tiny", "--fallback", "llama", ok=False)
    assert bad.returncode == 1 and "loops" in bad.stderr

    new_key = "cd" * 32
    out = cli(env, "rotate-encryption-key", "--new-key", new_key).stdout
    assert "re-encrypted 1" in out
    with db() as s:
        sealed = s.execute(text("SELECT api_key_enc FROM providers WHERE name = 'local'")).scalar_one()
    assert crypto.decrypt(sealed, key=bytes.fromhex(new_key), context="provider:local") == "sk-from-stdin"


def test_cli_reports_missing_settings(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "llmproxy", "keys", "list"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "ENCRYPTION_KEY" in done.stderr
