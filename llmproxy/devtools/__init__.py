"""Developer tools: the CLI, an embedded Redis for local runs, and the stub upstream."""
