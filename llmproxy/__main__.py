"""`python -m llmproxy …`: the admin CLI."""
from llmproxy.cli import main

main()
