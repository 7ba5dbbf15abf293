"""`python -m bench.run --peer litellm`, its pure parts: LiteLLM's config file, the answer checks, the three-way
report and its goals from synthetic results, and the command line. Nothing here installs or starts LiteLLM."""

from __future__ import annotations

import json
import stat

import pytest

from bench import peer_litellm, peer_report, report
from bench.loadgen import Distribution, LevelResult
from bench.run import parse_args

STUB_URL = "http://127.0.0.1:40711/v1"


# -- LiteLLM's config ------------------------------------------------------------------------------------------


def test_the_config_serves_the_bench_model_from_the_stub(tmp_path):
    path = peer_litellm.write_config(tmp_path / "litellm.yaml", stub_url=STUB_URL, master_key="sk-master-1")
    config = json.loads(path.read_text())  # JSON is YAML: what LiteLLM's yaml.safe_load reads
    [model] = config["model_list"]
    assert model["model_name"] == "gpt-3.5-turbo"  # the name the load generator sends
    assert model["litellm_params"] == {
        "model": "openai/gpt-3.5-turbo",
        "api_base": STUB_URL,
        "api_key": peer_litellm.STUB_API_KEY,
    }
    assert config["general_settings"] == {"master_key": "sk-master-1"}  # no database_url: no Prisma


def test_the_config_file_is_readable_by_its_owner_only(tmp_path):
    path = peer_litellm.write_config(tmp_path / "sub" / "litellm.yaml", stub_url=STUB_URL, master_key="sk-m")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_missing_venv_has_no_version(tmp_path):
    assert peer_litellm.installed_version(tmp_path / "nothing-here") is None


# -- the answer checks -----------------------------------------------------------------------------------------


def _completion(content="Hello!", obj="chat.completion"):
    return json.dumps({"object": obj, "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})


def _chunk(content):
    return json.dumps({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]})


def test_a_chat_completion_passes():
    assert peer_litellm.completion_problem(200, _completion()) is None


@pytest.mark.parametrize(
    ("status", "text", "says"),
    [
        (401, '{"error": {"message": "bad key"}}', "HTTP 401"),
        (200, "not json", "not JSON"),
        (200, _completion(obj="text_completion"), "not a chat.completion"),
        (200, _completion(content=""), "no assistant content"),
    ],
)
def test_a_wrong_completion_is_named(status, text, says):
    assert says in peer_litellm.completion_problem(status, text)


def test_a_chat_stream_passes():
    text = f"data: {_chunk('Hel')}\n\ndata: {_chunk('lo')}\n\ndata: [DONE]\n\n"
    assert peer_litellm.stream_problem(200, text) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"data: {_chunk('Hi')}\n\n", "[DONE]"),
        ("data: {oops\n\ndata: [DONE]\n\n", "not JSON"),
        (f"data: {_completion()}\n\ndata: [DONE]\n\n", "chat.completion.chunk"),
        (f"data: {_chunk('')}\n\ndata: [DONE]\n\n", "no content"),
    ],
)
def test_a_wrong_stream_is_named(text, says):
    assert says in peer_litellm.stream_problem(200, text)


# -- the three-way report --------------------------------------------------------------------------------------


def _dist(p50, p99):
    return Distribution(p50=p50, p90=p99, p99=p99, mean=p50, min=p50, max=p99)


def _level(mode, c, *, p50, p99, rps, cpu, errors=0):
    figure = _dist(p50, p99)
    return LevelResult(
        mode=mode,
        concurrency=c,
        requests=100,
        errors=errors,
        duration_s=100 / rps,
        throughput_rps=rps,
        latency_ms=figure if mode == "sync" else _dist(p50 + 40, p99 + 40),
        ttft_ms=figure if mode == "stream" else None,
        cpu={"cpu_ms_per_request": {"loadgen": 2.0, **cpu}, "machine_busy_pct": 50.0},
    )


def _results(*, sync1, sync20, stream1, rps20, cpu20):
    """One target's results; the stub's CPU and the services are the same for every target."""
    shared = {"stub": 1.0, "postgres": 0.5, "redis": 0.5, "other": 1.0}
    return {
        "sync": {
            1: _level("sync", 1, p50=sync1, p99=sync1 + 5, rps=1000 / sync1, cpu={**cpu20, **shared}),
            20: _level("sync", 20, p50=sync20, p99=sync20 + 50, rps=rps20, cpu={**cpu20, **shared}),
        },
        "stream": {1: _level("stream", 1, p50=stream1, p99=stream1 + 5, rps=15.0, cpu={**cpu20, **shared})},
    }


STUB = _results(sync1=50.0, sync20=52.0, stream1=50.0, rps20=380.0, cpu20={})
LITELLM = _results(sync1=70.0, sync20=400.0, stream1=75.0, rps20=50.0, cpu20={"litellm": 20.0})
# Every goal met: CPU 6 ÷ 20 (+2 of services), +4 ms ÷ +20, TTFT +5 ÷ +25, 300 req/s ÷ 50 and ÷ 380.
GATEWAY = _results(
    sync1=54.0, sync20=66.0, stream1=55.0, rps20=300.0, cpu20={"web": 3.0, "worker1": 2.0, "worker2": 1.0}
)


def _build(peer_results=LITELLM, gateway=GATEWAY):
    return report.build_report(
        config={
            "scenarios": ["base"],
            "latency_ms": 50.0,
            "levels": [1, 20],
            "modes": ["sync", "stream"],
            "requests_per_thread": 5,
            "warmup_per_thread": 1,
        },
        machine={"cpus": 2},
        proxy_topology={"web_workers": 2, "web_threads": 32, "worker_procs": 2, "worker_threads": 16},
        stub=STUB,
        proxy=gateway,
        peer={"name": "litellm", "version": "1.2.3", "command": "litellm --num_workers 1", "results": peer_results},
    )


def test_server_cpu_is_the_machine_less_client_and_stub():
    cpu = {"cpu_ms_per_request": {"loadgen": 2.0, "stub": 1.0, "web": 3.0, "postgres": 0.5, "other": 1.5}}
    assert peer_report.server_cpu_ms(cpu) == pytest.approx(5.0)
    assert peer_report.server_cpu_ms(None) is None


def test_three_rows_per_mode_and_level_with_what_each_adds_over_the_stub():
    rows = _build()["peer"]["rows"]
    assert [(r["mode"], r["concurrency"], r["target"]) for r in rows] == [
        (mode, c, target)
        for mode, c in (("sync", 1), ("sync", 20), ("stream", 1))
        for target in ("stub", "litellm", "gateway")
    ]
    stub, litellm, gateway = rows[:3]  # sync c=1
    assert stub["added_p50_ms"] is None and stub["throughput_vs_stub"] == pytest.approx(1.0)
    assert litellm["added_p50_ms"] == pytest.approx(20.0) and litellm["added_p99_ms"] == pytest.approx(20.0)
    assert gateway["added_p50_ms"] == pytest.approx(4.0)
    assert gateway["throughput_vs_stub"] == pytest.approx(50 / 54)
    assert gateway["server_cpu_ms_per_request"] == pytest.approx(8.0)  # web 3 + workers 3 + services 2
    assert list(gateway["cpu_ms_per_request"]) == ["web", "worker", "postgres", "redis", "other", "loadgen", "stub"]
    assert gateway["cpu_ms_per_request"]["worker"] == pytest.approx(3.0)  # worker1 + worker2
    stream_gateway = rows[-1]
    assert stream_gateway["figure"] == "TTFT" and stream_gateway["added_p50_ms"] == pytest.approx(5.0)


def test_the_goals_met():
    peer = _build()["peer"]
    goals = {g["goal"]: g for g in peer["goals"]}
    assert list(goals) == [
        "sync c=20: server CPU per request, gateway ÷ litellm",
        "sync c=1: added p50, gateway ÷ litellm",
        "sync c=1: added p50, gateway",
        "stream c=1: added TTFT p50, gateway ÷ litellm",
        "sync c=20: throughput, gateway ÷ litellm",
        "sync c=20: throughput, gateway ÷ stub",
    ]
    assert goals["sync c=20: server CPU per request, gateway ÷ litellm"]["value"] == pytest.approx(8.0 / 22.0)
    assert goals["sync c=1: added p50, gateway ÷ litellm"]["value"] == pytest.approx(0.2)
    assert goals["sync c=1: added p50, gateway"]["value"] == pytest.approx(4.0)
    assert goals["stream c=1: added TTFT p50, gateway ÷ litellm"]["value"] == pytest.approx(0.2)
    assert goals["sync c=20: throughput, gateway ÷ litellm"]["value"] == pytest.approx(6.0)
    assert goals["sync c=20: throughput, gateway ÷ stub"]["value"] == pytest.approx(300 / 380)
    assert all(g["status"] == "met" for g in goals.values())
    assert (peer["goals_met"], peer["goals_total"]) == (6, 6)


def test_goals_missed_by_a_slow_gateway():
    slow = _results(sync1=64.0, sync20=200.0, stream1=70.0, rps20=100.0, cpu20={"web": 10.0, "worker1": 8.0})
    goals = {g["goal"]: g for g in _build(gateway=slow)["peer"]["goals"]}
    assert all(g["status"] == "not met" for g in goals.values())
    assert goals["sync c=1: added p50, gateway ÷ litellm"]["value"] == pytest.approx(14 / 20)


def test_a_goal_is_not_met_when_a_request_failed():
    failing = {**GATEWAY, "sync": {**GATEWAY["sync"]}}
    failing["sync"][1] = _level("sync", 1, p50=54.0, p99=59.0, rps=18.0, cpu={"web": 1.0}, errors=3)
    goals = {g["goal"]: g for g in _build(gateway=failing)["peer"]["goals"]}
    assert goals["sync c=1: added p50, gateway"]["status"] == "not met"
    assert goals["sync c=20: throughput, gateway ÷ litellm"]["status"] == "met"  # another level, no errors


def test_a_peer_that_adds_nothing_leaves_the_ratio_undecided():
    instant = _results(sync1=50.0, sync20=400.0, stream1=50.0, rps20=50.0, cpu20={"litellm": 20.0})
    goals = {g["goal"]: g for g in _build(peer_results=instant)["peer"]["goals"]}
    assert goals["sync c=1: added p50, gateway ÷ litellm"]["status"] == "n/a"
    assert goals["stream c=1: added TTFT p50, gateway ÷ litellm"]["status"] == "n/a"
    assert goals["sync c=1: added p50, gateway"]["status"] == "met"


def test_one_level_only_has_no_throughput_goals():
    one = {mode: {1: levels[1]} for mode, levels in GATEWAY.items()}
    goals = _build(gateway=one)["peer"]["goals"]
    assert not [g for g in goals if "throughput" in g["goal"]]
    assert goals[0]["goal"] == "sync c=1: server CPU per request, gateway ÷ litellm"


def test_the_rendered_report_has_the_three_way_table_and_the_goals():
    text = report.render(json.loads(json.dumps(_build())))  # as written to JSON, as the bench renders it
    assert "three-way: the bare stub, litellm 1.2.3 and the gateway" in text
    assert "litellm sync c=20" in text  # the CPU table has the peer's levels
    assert "sync c=20: throughput, gateway ÷ litellm" in text and "6.00×" in text
    assert "goals vs litellm met: 6/6" in text


def test_without_a_peer_the_report_is_as_before():
    built = report.build_report(
        config={"scenarios": ["base"], "latency_ms": 50.0, "requests_per_thread": 5, "warmup_per_thread": 1},
        machine={"cpus": 2},
        proxy_topology={"web_workers": 2, "web_threads": 32, "worker_procs": 2, "worker_threads": 16},
        stub=STUB,
        proxy=GATEWAY,
    )
    assert "peer" not in built
    text = report.render(built)
    assert "three-way" not in text and "goals vs" not in text and "litellm" not in text


# -- the command line ------------------------------------------------------------------------------------------


def test_peer_is_off_by_default():
    assert parse_args([]).peer is None


def test_peer_litellm_with_the_base_scenario():
    args = parse_args(["--scenarios", "base", "--peer", "litellm", "--quick"])
    assert args.peer == "litellm"


@pytest.mark.parametrize("argv", [["--peer", "litellm", "--scenarios", "batch"], ["--peer", "other"]])
def test_peer_needs_the_base_scenario_and_a_known_name(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "--peer" in capsys.readouterr().err
