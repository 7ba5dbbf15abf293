"""OpenAI-style batches: input files, dispatch of lines as jobs, results and files."""
