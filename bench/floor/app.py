"""The floor's web side: parse the body, send it to the worker, wait for the answer on Redis, return it.

Served by gunicorn (`gthread`, as the gateway): `gunicorn -k gthread … 'bench.floor.app:create_app()'`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import redis
from flask import Flask, Response, request

from bench.floor.common import END, QUEUE, REDIS_ENV, TASK, WAIT_S, env, make_celery, result_key

_NOT_AN_OBJECT = b'{"error": {"message": "the body must be a JSON object", "type": "invalid_request_error"}}'
_TIMED_OUT = b'{"error": {"message": "the floor worker did not answer in time", "type": "timeout"}}'


def create_app() -> Flask:
    """The Flask app gunicorn serves: one route, `POST /v1/chat/completions`."""
    redis_url = env(REDIS_ENV)
    client = redis.Redis.from_url(redis_url)
    celery = make_celery(redis_url)
    app = Flask(__name__)

    @app.post("/v1/chat/completions")
    def chat_completions() -> Response:
        # An Authorization header is accepted and ignored: the floor has no keys (nor any other feature).
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return Response(_NOT_AN_OBJECT, 400, mimetype="application/json")
        job_id = uuid.uuid4().hex
        celery.send_task(TASK, args=[job_id, body], queue=QUEUE)
        key = result_key(job_id)
        if body.get("stream"):
            return Response(_events(client, key), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
        popped = client.blpop([key], timeout=WAIT_S)
        if popped is None:
            return Response(_TIMED_OUT, 504, mimetype="application/json")
        answer = popped[1]
        # The worker puts the upstream's status in front as three digits, so no JSON is parsed on the way back.
        return Response(answer[3:], int(answer[:3]), mimetype="application/json")

    return app


def _events(client: redis.Redis, key: str) -> Iterator[bytes]:
    """The streamed answer as SSE: each payload the worker pushes, as it comes, then `data: [DONE]`."""
    while True:
        popped = client.blpop([key], timeout=WAIT_S)
        if popped is None:
            yield b"data: " + _TIMED_OUT + b"\n\n"  # no [DONE]: the caller sees a broken stream
            return
        payload = popped[1]
        if payload == END:
            yield b"data: [DONE]\n\n"
            return
        yield b"data: " + payload + b"\n\n"
