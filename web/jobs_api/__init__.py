"""The jobs API: submit a request as a job, poll or long-poll it, list and cancel jobs."""
