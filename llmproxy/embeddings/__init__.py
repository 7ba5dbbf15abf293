"""OpenAI's embeddings API: request checks, input token counts and the response's vectors."""
