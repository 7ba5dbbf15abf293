"""Redis or the database down: 503 dependency_unavailable, and nothing half-written."""

from sqlalchemy import func, select

from llmproxy.storage.models import Job

BODY = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "x"}]}


def test_redis_down_is_503_and_stores_no_job(settings, db, make_key):
    from web import create_app

    for fields in ({}, {"rpm_limit": 10}):  # enqueue fails / admission fails
        secret, _ = make_key(**fields)
        app = create_app(settings.with_(redis_url="redis://127.0.0.1:1/0"))
        for path, extra in (("/v1/chat/completions", {}), ("/v1/jobs", None)):
            payload = BODY if extra is not None else {"body": BODY}
            r = app.test_client().post(path, json=payload, headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code == 503, r.json
            assert r.json["error"] == {
                "message": "Redis is unavailable; nothing was done, try again",
                "type": "service_unavailable",
                "param": None,
                "code": "dependency_unavailable",
            }
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_database_down_is_503(settings, make_key):
    from web import create_app

    secret, _ = make_key()
    app = create_app(settings.with_(database_url="postgresql+psycopg://postgres@127.0.0.1:1/none"))
    r = app.test_client().post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 503 and r.json["error"]["code"] == "dependency_unavailable"
    assert "The database" in r.json["error"]["message"]
