"""Operations over the records: retention (deleting what has outlived RETENTION_DAYS)."""
