"""Operations: metrics, worker heartbeats and record retention."""
