"""OpenAI's Batch API: input and output files, and batches of requests run as jobs."""
