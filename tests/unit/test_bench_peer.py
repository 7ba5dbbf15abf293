"""`python -m bench.run --peer litellm,floor`, its pure parts: LiteLLM's config file, the answer checks, the floor's
Redis database and command lines, the report (a row per target, the goals vs LiteLLM, the gateway vs its stack's
floor) from synthetic results, and the command line. Nothing here installs or starts LiteLLM or the floor."""

from __future__ import annotations

import json
import stat

import pytest

from bench import answers, peer_floor, peer_litellm, peer_report, report
from bench.loadgen import Distribution, LevelResult
from bench.processes import BenchError
from bench.proxy import ProxyConfig
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
    assert answers.completion_problem(200, _completion()) is None


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
    assert says in answers.completion_problem(status, text)


def test_a_chat_stream_passes():
    text = f"data: {_chunk('Hel')}\n\ndata: {_chunk('lo')}\n\ndata: [DONE]\n\n"
    assert answers.stream_problem(200, text) is None


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
    assert says in answers.stream_problem(200, text)


# -- the floor's Redis database and processes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bench_url", "floor_url"),
    [
        ("redis://127.0.0.1:6379/9", "redis://127.0.0.1:6379/8"),
        ("redis://:secret@10.0.0.5:6380/3?socket_timeout=2", "redis://:secret@10.0.0.5:6380/8?socket_timeout=2"),
        ("redis://localhost", "redis://localhost/8"),
        ("unix:///run/redis.sock?db=9", "unix:///run/redis.sock?db=8"),
    ],
)
def test_the_floor_uses_database_8_of_the_bench_redis(bench_url, floor_url):
    assert peer_floor.redis_url(bench_url) == floor_url


def test_the_floor_never_flushes_the_gateway_database():
    with pytest.raises(BenchError, match="--redis-url"):  # refused before anything connects
        peer_floor.prepare("redis://127.0.0.1:6379/8")


def test_the_floor_runs_with_the_gateway_process_and_thread_counts():
    config = ProxyConfig(web_workers=3, web_threads=24, worker_procs=2, worker_threads=12)
    web = peer_floor.web_command(40123, config)
    assert web[web.index("--worker-class") + 1] == "gthread"
    assert (web[web.index("--workers") + 1], web[web.index("--threads") + 1]) == ("3", "24")
    assert "--access-logfile" not in web and web[-1] == "bench.floor.app:create_app()"
    worker = peer_floor.worker_command(config, "floor1@localhost")
    assert worker[worker.index("-A") + 1 :][:2] == ["bench.floor.worker", "worker"]
    assert worker[worker.index("-Q") + 1] == "floor" and worker[worker.index("-P") + 1] == "threads"
    assert worker[worker.index("-c") + 1] == "12" and worker[worker.index("--loglevel") + 1] == "warning"
    assert {"--without-gossip", "--without-mingle", "--without-heartbeat"} <= set(worker)


def test_the_floor_app_is_separate_from_the_gateway():
    import ast
    from pathlib import Path

    imported = set()
    for path in (Path(peer_floor.__file__).parent / "floor").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"llmproxy", "web", "worker"}


# -- the report: a row per target --------------------------------------------------------------------------------------


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
# The floor: CPU 2.5 (+2 of services), +2 ms, TTFT +2, 350 req/s.
FLOOR = _results(sync1=52.0, sync20=55.0, stream1=52.0, rps20=350.0, cpu20={"floor-web": 1.0, "floor-worker": 1.5})


def _peer(name, results):
    if name == "litellm":
        return {"name": "litellm", "version": "1.2.3", "command": "litellm --num_workers 1", "results": results}
    return {"name": "floor", "version": "", "command": "gunicorn … + celery …", "results": results}


def _build(peer_results=LITELLM, gateway=GATEWAY, peers=None):
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
        peers=peers if peers is not None else [_peer("litellm", peer_results)],
    )


def test_server_cpu_is_the_machine_less_client_and_stub():
    cpu = {"cpu_ms_per_request": {"loadgen": 2.0, "stub": 1.0, "web": 3.0, "postgres": 0.5, "other": 1.5}}
    assert peer_report.server_cpu_ms(cpu) == pytest.approx(5.0)
    assert peer_report.server_cpu_ms(None) is None


def test_a_row_per_target_and_level_with_what_each_adds_over_the_stub():
    rows = _build()["peers"]["rows"]
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
    peer = _build()["peers"]
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
    goals = {g["goal"]: g for g in _build(gateway=slow)["peers"]["goals"]}
    assert all(g["status"] == "not met" for g in goals.values())
    assert goals["sync c=1: added p50, gateway ÷ litellm"]["value"] == pytest.approx(14 / 20)


def test_a_goal_is_not_met_when_a_request_failed():
    failing = {**GATEWAY, "sync": {**GATEWAY["sync"]}}
    failing["sync"][1] = _level("sync", 1, p50=54.0, p99=59.0, rps=18.0, cpu={"web": 1.0}, errors=3)
    goals = {g["goal"]: g for g in _build(gateway=failing)["peers"]["goals"]}
    assert goals["sync c=1: added p50, gateway"]["status"] == "not met"
    assert goals["sync c=20: throughput, gateway ÷ litellm"]["status"] == "met"  # another level, no errors


def test_a_peer_that_adds_nothing_leaves_the_ratio_undecided():
    instant = _results(sync1=50.0, sync20=400.0, stream1=50.0, rps20=50.0, cpu20={"litellm": 20.0})
    goals = {g["goal"]: g for g in _build(peer_results=instant)["peers"]["goals"]}
    assert goals["sync c=1: added p50, gateway ÷ litellm"]["status"] == "n/a"
    assert goals["stream c=1: added TTFT p50, gateway ÷ litellm"]["status"] == "n/a"
    assert goals["sync c=1: added p50, gateway"]["status"] == "met"


def test_one_level_only_has_no_throughput_goals():
    one = {mode: {1: levels[1]} for mode, levels in GATEWAY.items()}
    goals = _build(gateway=one)["peers"]["goals"]
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
    assert "peers" not in built
    text = report.render(built)
    assert "three-way" not in text and "goals vs" not in text and "litellm" not in text and "floor" not in text


# -- the report: two peers, the floor ------------------------------------------------------------------------


def test_two_peers_make_four_rows_per_level_in_the_order_measured():
    peers = _build(peers=[_peer("litellm", LITELLM), _peer("floor", FLOOR)])["peers"]
    assert [p["name"] for p in peers["measured"]] == ["litellm", "floor"]
    assert [(r["mode"], r["concurrency"], r["target"]) for r in peers["rows"]] == [
        (mode, c, target)
        for mode, c in (("sync", 1), ("sync", 20), ("stream", 1))
        for target in ("stub", "litellm", "floor", "gateway")
    ]
    floor = peers["rows"][2]
    assert floor["added_p50_ms"] == pytest.approx(2.0)
    assert list(floor["cpu_ms_per_request"])[:2] == ["floor-web", "floor-worker"]
    # Each peer's results are carried the same way, ready for JSON.
    assert peers["measured"][1]["results"]["sync"]["20"]["throughput_rps"] == pytest.approx(350.0)


def test_the_goals_vs_litellm_are_unchanged_by_the_floor():
    alone = _build()["peers"]
    both = _build(peers=[_peer("litellm", LITELLM), _peer("floor", FLOOR)])["peers"]
    assert both["goals"] == alone["goals"] and both["goals_vs"] == "litellm"
    assert (both["goals_met"], both["goals_total"]) == (6, 6)


def test_the_gateway_vs_its_floor_with_litellm():
    rows = {r["figure"]: r for r in _build(peers=[_peer("litellm", LITELLM), _peer("floor", FLOOR)])["peers"]["floor"]}
    assert list(rows) == [
        "sync c=20: server CPU per request",
        "sync c=1: added p50",
        "stream c=1: added TTFT p50",
        "sync c=20: throughput",
    ]
    cpu = rows["sync c=20: server CPU per request"]
    assert (cpu["gateway"], cpu["floor"], cpu["litellm"]) == pytest.approx((8.0, 4.5, 22.0))
    assert cpu["gateway_vs_floor"] == pytest.approx(8.0 / 4.5) and cpu["floor_vs_litellm"] == pytest.approx(4.5 / 22)
    added = rows["sync c=1: added p50"]
    assert added["gateway_vs_floor"] == pytest.approx(2.0) and added["floor_vs_litellm"] == pytest.approx(0.1)
    ttft = rows["stream c=1: added TTFT p50"]
    assert ttft["gateway_vs_floor"] == pytest.approx(2.5) and ttft["floor_vs_litellm"] == pytest.approx(2 / 25)
    rps = rows["sync c=20: throughput"]
    assert rps["gateway_vs_floor"] == pytest.approx(300 / 350) and rps["floor_vs_litellm"] == pytest.approx(7.0)
    assert all(r["clean"] for r in rows.values())
    assert not any("met" in r or "status" in r for r in rows.values())  # informational: no pass/fail


def test_the_floor_alone_has_no_goals_and_no_litellm_column():
    built = _build(peers=[_peer("floor", FLOOR)])
    peers = built["peers"]
    assert "goals" not in peers and [p["name"] for p in peers["measured"]] == ["floor"]
    assert all(r["litellm"] is None and r["floor_vs_litellm"] is None for r in peers["floor"])
    text = report.render(json.loads(json.dumps(built)))
    assert "three-way: the bare stub, floor and the gateway" in text
    assert "the gateway vs its stack's floor" in text and "gateway ÷ floor" in text
    assert "floor ÷ litellm" not in text and "goals vs" not in text and "goals: the gateway vs" not in text
    assert "floor sync c=20" in text  # the CPU table has the floor's levels


def test_a_floor_that_adds_nothing_leaves_the_ratio_undecided():
    instant = _results(sync1=50.0, sync20=55.0, stream1=49.0, rps20=350.0, cpu20={"floor-web": 1.0})
    rows = {r["figure"]: r for r in _build(peers=[_peer("floor", instant)])["peers"]["floor"]}
    assert rows["sync c=1: added p50"]["gateway_vs_floor"] is None
    assert rows["stream c=1: added TTFT p50"]["gateway_vs_floor"] is None


def test_a_floor_level_with_errors_is_marked():
    failing = {**FLOOR, "sync": {**FLOOR["sync"]}}
    failing["sync"][1] = _level("sync", 1, p50=52.0, p99=57.0, rps=19.0, cpu={"floor-web": 1.0}, errors=2)
    built = _build(peers=[_peer("floor", failing)])
    rows = {r["figure"]: r for r in built["peers"]["floor"]}
    assert not rows["sync c=1: added p50"]["clean"] and rows["sync c=20: throughput"]["clean"]
    text = report.render(json.loads(json.dumps(built)))
    assert "sync c=1: added p50 *" in text and "* a level involved had failed requests" in text
    assert "floor sync c=1: 2 errors" in text


def test_the_rendered_report_with_both_peers():
    text = report.render(json.loads(json.dumps(_build(peers=[_peer("litellm", LITELLM), _peer("floor", FLOOR)]))))
    assert "four-way: the bare stub, litellm 1.2.3, floor and the gateway" in text
    assert "goals vs litellm met: 6/6" in text
    section = text[text.index("the gateway vs its stack's floor") :]
    assert "gateway ÷ floor" in section and "floor ÷ litellm" in section
    assert "7.00×" in section  # floor ÷ litellm throughput
    cpu_header = next(line for line in text.splitlines() if line.startswith("CPU ms/request"))
    assert "floor-web" in cpu_header and "floor-worker" in cpu_header and "litellm" in cpu_header


# -- the command line ------------------------------------------------------------------------------------------


def test_peer_is_off_by_default():
    assert parse_args([]).peers == []


@pytest.mark.parametrize(
    ("peer", "peers"),
    [
        ("litellm", ["litellm"]),
        ("floor", ["floor"]),
        ("litellm,floor", ["litellm", "floor"]),
        ("floor, litellm", ["litellm", "floor"]),
    ],
)
def test_peers_with_the_base_scenario(peer, peers):
    args = parse_args(["--scenarios", "base", "--peer", peer, "--quick"])
    assert args.peers == peers  # always litellm first: the order they are measured and shown


@pytest.mark.parametrize(
    "argv",
    [["--peer", "litellm", "--scenarios", "batch"], ["--peer", "other"], ["--peer", "floor,other"]],
)
def test_peer_needs_the_base_scenario_and_a_known_name(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "--peer" in capsys.readouterr().err
