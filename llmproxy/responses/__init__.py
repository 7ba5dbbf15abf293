"""OpenAI's Responses API: its requests checked, translated to chat completions and back, streamed as its events."""
