"""Gunicorn settings for the web process (threads, because a synchronous request waits on Redis)."""

import multiprocessing
import os

# gunicorn's gthread worker, whose quit handler cannot deadlock on a second signal (see the module).
worker_class = "web.gunicorn_worker.ThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(4, multiprocessing.cpu_count()))))
threads = int(os.environ.get("WEB_THREADS", "32"))
timeout = int(float(os.environ.get("SYNC_TIMEOUT_SECONDS", "600"))) + 30
keepalive = 30
# On SIGTERM a worker finishes its in-flight requests for up to this long before its master kills it:
# gunicorn's default (30 s) would leave nothing of a process manager's usual 30 s stop window for exiting.
graceful_timeout = 25
# ACCESS_LOG: a path, "-" (stdout, the default) or "off". Off means gunicorn skips the line entirely;
# /dev/null would still format one per request (measured: 7% of the web's CPU under load).
_access = os.environ.get("ACCESS_LOG", "-").strip()
accesslog = None if _access.lower() in ("", "off", "none") else _access
