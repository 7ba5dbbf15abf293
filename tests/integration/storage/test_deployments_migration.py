"""Migration 0009 turns each model's provider and upstream model into its first deployment, and back down."""

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from llmproxy.storage import migrate
from tests.support.databases import needs_postgresql, scratch_postgresql


def _columns(engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def _becomes_a_deployment_and_back(url: str) -> None:
    migrate.upgrade(url, "0008")
    engine = create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for pid, name in ((1, "openai"), (2, "mistral")):
            conn.execute(
                text(
                    "INSERT INTO providers (id, name, kind, api_base, enabled, created_at, updated_at) "
                    "VALUES (:id, :name, 'openai', 'http://x/v1', :yes, :now, :now)"
                ),
                {"id": pid, "name": name, "yes": True, "now": now},
            )
        for mid, name, pid, upstream in ((1, "fast", 1, "gpt-fast"), (2, "small", 2, "mistral-small-latest")):
            conn.execute(
                text(
                    "INSERT INTO models (id, name, mode, provider_id, upstream_model, fallbacks, input_cost_per_1m, "
                    "output_cost_per_1m, enabled, created_at, updated_at) "
                    "VALUES (:id, :name, 'chat', :pid, :up, '[]', 0, 0, :yes, :now, :now)"
                ),
                {"id": mid, "name": name, "pid": pid, "up": upstream, "yes": True, "now": now},
            )
    migrate.upgrade(url, "0009")
    assert not {"provider_id", "upstream_model"} & _columns(engine, "models")
    assert "deployment_id" in _columns(engine, "usage_ledger")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT model_id, provider_id, upstream_model, weight, enabled, api_base, api_key_enc "
                "FROM deployments ORDER BY model_id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, 1, "gpt-fast", 1, True, None, None),
        (2, 2, "mistral-small-latest", 1, True, None, None),
    ]
    with engine.begin() as conn:  # a second deployment: the first one goes back down
        conn.execute(
            text(
                "INSERT INTO deployments (model_id, provider_id, upstream_model, weight, enabled, created_at, "
                "updated_at) VALUES (1, 2, 'other', 3, :yes, :now, :now)"
            ),
            {"yes": True, "now": now},
        )
    migrate.downgrade(url, "0008")
    assert "deployments" not in inspect(engine).get_table_names()
    assert "deployment_id" not in _columns(engine, "usage_ledger")
    with engine.connect() as conn:
        restored = conn.execute(text("SELECT id, provider_id, upstream_model FROM models ORDER BY id")).all()
    assert [tuple(r) for r in restored] == [(1, 1, "gpt-fast"), (2, 2, "mistral-small-latest")]
    engine.dispose()


def test_sqlite_models_become_deployments_and_back(tmp_path):
    _becomes_a_deployment_and_back(f"sqlite:///{tmp_path}/m.db")


@needs_postgresql
def test_postgresql_models_become_deployments_and_back():
    with scratch_postgresql() as url:
        _becomes_a_deployment_and_back(url)
