"""A process started with a bad setting stops at once, with one line naming it and no traceback."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("entry", ["from web import create_app; create_app()", "import worker.main"])
def test_process_refuses_to_start_without_encryption_key(entry, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ADMIN_API_KEY": "x" * 20, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    done = subprocess.run([sys.executable, "-c", entry], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("configuration error: ENCRYPTION_KEY is not set")
    assert "Traceback" not in done.stderr
