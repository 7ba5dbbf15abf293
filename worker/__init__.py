"""The worker process: Celery app and thin tasks that call llmproxy."""
