"""LiteLLM's proxy as a peer of the gateway: the same stub upstream, the same load, the same bench run.

LiteLLM is never a dependency of the project: `ensure_installed` puts a pinned `litellm[proxy]` into a
virtualenv of its own (bench/.litellm-venv/, gitignored) the first time `--peer litellm` is asked for,
and reuses it while it holds that version. `start_litellm` runs it as an operator would
(`litellm --config FILE --port P --num_workers 1`), with one model pointing at the stub, a master key,
no database, and nothing that reaches past the loopback.
"""

from __future__ import annotations

import json
import os
import secrets
import venv
from pathlib import Path

import requests

from bench.answers import check_answers
from bench.loadgen import MODEL
from bench.processes import ROOT, BenchError, Child, ProcessSet, run_command, wait_for
from llmproxy.devtools.net import free_port

# Pinned so runs compare like with like. Newer releases (1.108+, 1.110+) pin companion packages
# (litellm-proxy-extras, litellm-proxy) at versions PyPI does not serve, and the 1.107 line was pulled.
LITELLM_VERSION = "1.106.12"
VENV_DIR = ROOT / "bench" / ".litellm-venv"
INSTALL_TIMEOUT_S = 900.0  # about two minutes on this kind of machine; a slow mirror gets room
READY_TIMEOUT_S = 120.0  # its imports alone take several seconds on 2 cores
STUB_API_KEY = "sk-bench"  # what the stub is sent by everyone (it accepts any key not starting with "bad")

# Variables LiteLLM would act on if the bench's own environment carried them: a DATABASE_URL turns on
# Prisma (key tables, spend logs, a migration at start) and REDIS_* its cache and router state, which would
# make it a different, heavier product than the bare proxy the peer is meant to be.
_DROPPED_ENV = ("DATABASE_URL", "DIRECT_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD")
_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # the bundled price map: no fetch at start (and none would work here)
    "DISABLE_ADMIN_UI": "True",  # the bench uses the API only; an operator measuring it would not serve the UI
    "NO_PROXY": "127.0.0.1,localhost",  # httpx/aiohttp honour proxy variables: the stub is on loopback
}
# Uvicorn's access log is on unless its log level is above INFO; the gateway's bench runs gunicorn without one
# unless --access-log, so LiteLLM gets the same (LITELLM_LOG also sets LiteLLM's own loggers, WARNING by default).
_QUIET_ACCESS_LOG = {"LITELLM_LOG": "WARNING"}


def venv_python(venv_dir: Path = VENV_DIR) -> Path:
    """The interpreter of the peer's virtualenv."""
    return venv_dir / "bin" / "python"


def installed_version(venv_dir: Path = VENV_DIR) -> str | None:
    """The litellm version in the virtualenv, or None when it (or the venv) is missing."""
    python = venv_python(venv_dir)
    if not python.exists() or not (venv_dir / "bin" / "litellm").exists():
        return None
    try:
        out = run_command(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"], {**os.environ}
        )
    except BenchError:
        return None
    return out.strip() or None


def ensure_installed(version: str = LITELLM_VERSION, venv_dir: Path = VENV_DIR) -> Path:
    """Install `litellm[proxy]==version` into its own virtualenv unless it is there already; its `litellm` CLI."""
    have = installed_version(venv_dir)
    if have != version:
        print(
            f"installing litellm[proxy]=={version} into {venv_dir} "
            f"(found {have or 'none'}; takes a few minutes, once) …",
            flush=True,
        )
        if not venv_python(venv_dir).exists():
            # Built from the interpreter running the bench (from inside the project's venv, on its base
            # Python), so the peer runs on the same CPython as the gateway. An existing venv is kept: pip
            # moves it to `version` and reuses whatever an interrupted install already put there.
            venv.EnvBuilder(with_pip=True).create(venv_dir)
        run_command(
            [str(venv_python(venv_dir)), "-m", "pip", "install", "--quiet", f"litellm[proxy]=={version}"],
            {**os.environ},
            timeout=INSTALL_TIMEOUT_S,
        )
        have = installed_version(venv_dir)
        if have != version:
            raise BenchError(f"pip installed litellm {have!r} into {venv_dir}, not {version}")
    return venv_dir / "bin" / "litellm"


def config_text(*, stub_url: str, master_key: str, model: str = MODEL) -> str:
    """LiteLLM's config: the bench's model served by the stub (OpenAI dialect), a master key, nothing else.

    Written as JSON, which is YAML too, so neither side needs a YAML writer and every value is quoted right.
    """
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    # openai/ keeps the name as sent and speaks Chat Completions to api_base (the stub's …/v1).
                    "model": f"openai/{model}",
                    "api_base": stub_url,
                    "api_key": STUB_API_KEY,
                },
            }
        ],
        "general_settings": {"master_key": master_key},
        # A no-op in the pinned version (it sends no telemetry); older ones did unless told not to.
        "litellm_settings": {"telemetry": False},
    }
    return json.dumps(config, indent=2) + "\n"


def write_config(path: Path, *, stub_url: str, master_key: str, model: str = MODEL) -> Path:
    """Write config_text() to `path` (readable by its owner only: it holds the master key); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as out:
        out.write(config_text(stub_url=stub_url, master_key=master_key, model=model))
    path.chmod(0o600)  # a file left by an earlier run keeps its mode through O_CREAT
    return path


class LiteLLM:
    """A running LiteLLM proxy: its OpenAI-style base URL, the key it takes, and its process."""

    def __init__(self, child: Child, url: str, key: str) -> None:
        self.child = child
        self.url = url  # …/v1, like the stub's
        self.key = key

    @property
    def command(self) -> str:
        """Its command line as the report shows it (paths shortened to file names)."""
        return " ".join(Path(a).name if "/" in a else a for a in self.child.args)

    @property
    def pid(self) -> int | None:
        """The CLI's pid (its process tree is LiteLLM's CPU)."""
        return self.child.pid

    def stop(self) -> None:
        """Stop it (before the gateway starts, so the two never share the cores)."""
        self.child.stop()


def start_litellm(
    procs: ProcessSet, *, stub_url: str, config_dir: Path, access_log: bool = False, version: str = LITELLM_VERSION
) -> LiteLLM:
    """Install if needed, start `litellm --config … --num_workers 1` against the stub, wait until it serves."""
    cli = ensure_installed(version)
    key = "sk-bench-litellm-" + secrets.token_urlsafe(16)
    config = write_config(config_dir / "litellm-config.yaml", stub_url=stub_url, master_key=key)
    port = free_port()
    env = {**procs.env, **_ENV, **({} if access_log else _QUIET_ACCESS_LOG)}
    for name in _DROPPED_ENV:
        env.pop(name, None)
    # The bench's PYTHONPATH points at this checkout; LiteLLM must import only its own venv's packages.
    env.pop("PYTHONPATH", None)
    child = Child(
        "litellm",
        [str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env,
        procs.log_dir,
    )
    procs.children.append(child)  # registered before it starts, so stop_all() covers a failed start too
    child.start()
    peer = LiteLLM(child, f"http://127.0.0.1:{port}/v1", key)
    _wait_ready(peer)
    check_answers(peer.url, peer.key)
    return peer


def _wait_ready(peer: LiteLLM) -> None:
    base = peer.url.removesuffix("/v1")

    def alive() -> bool:
        try:
            return requests.get(base + "/health/liveliness", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(alive, timeout=READY_TIMEOUT_S, message="LiteLLM to answer /health/liveliness", watch=[peer.child])
