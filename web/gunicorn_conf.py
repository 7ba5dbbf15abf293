"""Gunicorn settings for the web process (threads, because a synchronous request waits on Redis)."""
import multiprocessing
import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count())))
threads = int(os.environ.get("WEB_THREADS", 32))
timeout = int(float(os.environ.get("SYNC_TIMEOUT_SECONDS", 600))) + 30
keepalive = 30
accesslog = os.environ.get("ACCESS_LOG", "-") or None  # ACCESS_LOG="" turns it off
