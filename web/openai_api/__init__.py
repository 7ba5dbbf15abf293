"""OpenAI-compatible client routes: chat completions (waited for, streamed or async) and the model list."""
