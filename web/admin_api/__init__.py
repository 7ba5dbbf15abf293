"""Administration: keys, providers and models, usage reports, and the original proxy's compatibility routes."""
