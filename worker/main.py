"""Entry point for `celery -A worker.main …`: the process's Celery app."""

from worker.app import create_celery

app = create_celery()
