"""LLM Proxy domain package: shared by the web and worker processes, imports neither Flask nor Celery."""
