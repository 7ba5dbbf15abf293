"""The floor: the cheapest request path on the gateway's own stack, with none of the gateway's features.

`python -m bench.run --peer floor` measures it in front of the same stub as the gateway: a Flask app under
gunicorn `gthread` takes `POST /v1/chat/completions`, sends the body to a Celery worker on Redis and waits
for the answer on a Redis list (BLPOP); the worker posts the body to the upstream with one pooled
`requests.Session` and pushes the answer (or each streamed chunk) back. No keys, no limits, no database,
no ledger, no retries: what is left is what the stack itself costs, so the report can show how far the
gateway is from what its stack allows.

  common.py  the names both sides share (queue, task, Redis keys) and the Celery app, configured like the gateway's
  app.py     the web side: `create_app()` for gunicorn
  worker.py  the worker side: `celery -A bench.floor.worker worker -Q floor -P threads …`

It is a separate minimal app: it imports nothing of the gateway (`llmproxy`, `web`, `worker`), and nothing
outside bench/ imports it. bench/peer_floor.py starts and stops it.
"""
