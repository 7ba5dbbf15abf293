"""Run the admin CLI (`python -m llmproxy …`) as an operator would, in a child process."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(env, *args, stdin=None, ok=True):
    """Run `python -m llmproxy *args` with `env`; assert it succeeded unless `ok` is False; the CompletedProcess."""
    done = subprocess.run(
        [sys.executable, "-m", "llmproxy", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done
