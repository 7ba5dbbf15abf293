"""Chat completions: request validation, token estimates and the assembly of streamed chunks."""
