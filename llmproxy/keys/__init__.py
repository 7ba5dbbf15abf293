"""Virtual keys (only hashes stored), callers' saved provider credentials, and AES-GCM for secrets at rest."""
