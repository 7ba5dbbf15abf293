"""Telemetry every process sends to Redis: metric counters (Prometheus) and worker heartbeats."""
