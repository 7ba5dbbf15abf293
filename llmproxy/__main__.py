"""`python -m llmproxy …`: the admin CLI."""

from llmproxy.devtools.cli import main

main()
