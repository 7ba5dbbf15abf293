"""`python -m bench.run`, answer → ledger: the lag histogram parsed from /metrics text, the difference of two scrapes
turned into bucket-bound quantiles (empty and missing data included), its goal and its table. No network: the
scrapes are given as text, or `scrape` is replaced."""

from __future__ import annotations

import json
import math

import pytest

from bench import goals, lag, report

BOUNDS = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60")


def _metrics(counts: dict[str, int], *, sum_s: float = 0.0, backlog: int = 0) -> str:
    """/metrics text as the gateway renders it: cumulative buckets from per-bucket counts (bound -> count)."""
    lines = [
        "# HELP llmproxy_job_latency_seconds Time from a job's start to its end.",
        "# TYPE llmproxy_job_latency_seconds histogram",
        'llmproxy_job_latency_seconds_bucket{le="0.05"} 999',  # another histogram: never read as the lag
        "llmproxy_job_latency_seconds_count 999",
        "# HELP llmproxy_records_backlog Ended jobs waiting for the writer to store them.",
        f"llmproxy_records_backlog {backlog}",
        "# HELP llmproxy_record_lag_seconds Time from a job's end to its stored record and bill.",
        "# TYPE llmproxy_record_lag_seconds histogram",
    ]
    running = 0
    for bound in BOUNDS:
        running += counts.get(bound, 0)
        lines.append(f'llmproxy_record_lag_seconds_bucket{{le="{bound}"}} {running}')
    running += counts.get("+Inf", 0)
    lines.append(f'llmproxy_record_lag_seconds_bucket{{le="+Inf"}} {running}')
    lines.append(f"llmproxy_record_lag_seconds_sum {sum_s:g}")
    lines.append(f"llmproxy_record_lag_seconds_count {running}")
    return "\n".join(lines) + "\n"


# -- parsing /metrics ------------------------------------------------------------------------------------------


def test_the_lag_histogram_and_the_backlog_are_read_from_the_text():
    parsed = lag.parse(_metrics({"0.05": 3, "0.25": 1}, sum_s=0.2, backlog=7))
    assert parsed["buckets"][0.05] == 3 and parsed["buckets"][0.1] == 3 and parsed["buckets"][0.25] == 4
    assert parsed["buckets"][math.inf] == 4
    assert (parsed["count"], parsed["sum_s"], parsed["backlog"]) == (4, pytest.approx(0.2), 7)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not prometheus at all",
        'llmproxy_job_latency_seconds_bucket{le="0.05"} 3\nllmproxy_job_latency_seconds_count 3',
    ],
)
def test_text_without_the_histogram_has_none(text):
    assert lag.parse(text) is None


# -- quantiles from the difference of two scrapes --------------------------------------------------------------


def test_only_the_phase_s_records_count():
    before = lag.parse(_metrics({"0.05": 50, "10": 5}, sum_s=3.0))  # an earlier phase, slow tail included
    after = lag.parse(_metrics({"0.05": 148, "0.1": 1, "0.25": 1, "10": 5}, sum_s=3.0 + 5.0))
    summary = lag.summarize(before, after)
    assert summary["available"] and summary["records"] == 100
    assert summary["p50_s"] == 0.05  # 98 of the phase's 100 within 50 ms
    assert summary["p99_s"] == 0.1  # the 99th record is in (0.05, 0.1]: its upper bound
    assert summary["p50_over_s"] is None and summary["p99_over_s"] is None
    assert summary["mean_s"] == pytest.approx(0.05)
    assert lag.quantile_text(summary, "p50") == "≤ 0.05 s" and lag.quantile_text(summary, "p99") == "≤ 0.1 s"


def test_a_quantile_above_the_last_bucket_is_open_ended():
    before = lag.parse(_metrics({}))
    after = lag.parse(_metrics({"0.05": 1, "+Inf": 1}, sum_s=90.0))
    summary = lag.summarize(before, after)
    assert summary["p50_s"] == 0.05
    assert summary["p99_s"] is None and summary["p99_over_s"] == 60.0  # JSON-safe: no infinity
    assert lag.quantile_text(summary, "p99") == "> 60 s"
    json.dumps(summary, allow_nan=False)


def test_a_phase_without_records_has_no_quantiles():
    scrape = lag.parse(_metrics({"0.05": 4}))
    summary = lag.summarize(scrape, scrape)
    assert summary["available"] and summary["records"] == 0
    assert summary["p50_s"] is None and summary["p99_s"] is None and summary["mean_s"] is None
    assert lag.quantile_text(summary, "p99") == "n/a"


@pytest.mark.parametrize("missing", ["before", "after", "both"])
def test_a_missing_scrape_leaves_the_phase_unavailable(missing):
    scrape = lag.parse(_metrics({"0.05": 4}))
    before = None if missing in ("before", "both") else scrape
    after = None if missing in ("after", "both") else scrape
    summary = lag.summarize(before, after)
    assert summary == {"available": False, "reason": "no llmproxy_record_lag_seconds at /metrics"}
    assert lag.quantile_text(summary, "p50") == "n/a"


def test_a_reset_histogram_leaves_the_phase_unavailable():
    before = lag.parse(_metrics({"0.05": 10}))
    after = lag.parse(_metrics({"0.05": 2}))  # Redis emptied during the phase
    assert lag.summarize(before, after)["available"] is False


def test_the_bucket_quantile_takes_the_first_bucket_that_reaches_the_rank():
    buckets = [(0.05, 1.0), (0.1, 2.0), (math.inf, 2.0)]
    assert lag.bucket_quantile(buckets, 0.5) == 0.05  # 1 of 2 reached: rank 1
    assert lag.bucket_quantile(buckets, 0.99) == 0.1
    assert lag.bucket_quantile([(0.05, 0.0), (math.inf, 0.0)], 0.5) is None
    assert lag.bucket_quantile([], 0.5) is None


# -- the recorder, with the scrapes replaced -------------------------------------------------------------------


def test_the_recorder_keeps_one_summary_per_phase(monkeypatch):
    scrapes = iter(
        [
            lag.parse(_metrics({"0.05": 2})),
            lag.parse(_metrics({"0.05": 12}, sum_s=0.3)),
            None,  # /metrics unreachable
            lag.parse(_metrics({"0.05": 20})),
        ]
    )
    monkeypatch.setattr(lag, "settled", lambda url, **kw: next(scrapes))
    recorder = lag.LagRecorder("http://127.0.0.1:1/metrics")
    recorder.begin()
    first = recorder.end("proxy sync c=1", 10)
    recorder.begin()
    second = recorder.end("proxy sync c=20", 40)
    assert first["records"] == 10 and first["p99_s"] == 0.05
    assert second["available"] is False
    assert [(p["phase"], p["sent"]) for p in recorder.phases] == [("proxy sync c=1", 10), ("proxy sync c=20", 40)]
    assert lag.phase_line(first).startswith("answer → ledger: 10 records, p50 ≤ 0.05 s, p99 ≤ 0.05 s")
    assert lag.phase_line(second).startswith("answer → ledger: n/a")


def test_settling_stops_at_once_when_metrics_are_unreachable(monkeypatch):
    monkeypatch.setattr(lag, "scrape", lambda url, timeout=5.0: None)
    assert lag.settled("http://127.0.0.1:1/metrics", timeout_s=0.0) is None


def test_settling_gives_up_on_a_backlog_that_does_not_drain(monkeypatch):
    stuck = lag.parse(_metrics({"0.05": 3}, backlog=5))
    monkeypatch.setattr(lag, "scrape", lambda url, timeout=5.0: stuck)
    result = lag.settled("http://127.0.0.1:1/metrics", timeout_s=0.0, poll_s=0.0)
    assert result["settled"] is False and result["backlog"] == 5


# -- the goal and the table ------------------------------------------------------------------------------------


def _phase(name, counts, sent=None, sum_s=0.0):
    after = lag.parse(_metrics(counts, sum_s=sum_s))
    return {"phase": name, "sent": sent, "lag": lag.summarize(lag.parse(_metrics({})), after)}


def test_the_goal_is_judged_on_the_worst_phase():
    phases = [_phase("proxy sync c=1", {"0.05": 10}), _phase("batch: drain (lines + probe)", {"0.05": 50, "1": 50})]
    goal = goals.lag_goal(phases)
    assert goal["goal"] == "answer → ledger p99 (worst of 2 phases: batch: drain (lines + probe))"
    assert (goal["value"], goal["shown"], goal["target"], goal["status"]) == (1.0, "≤ 1 s", "≤ 2 s", "met")


def test_a_p99_in_the_bucket_that_straddles_2_s_is_not_met():
    goal = goals.lag_goal([_phase("proxy sync c=20", {"0.05": 90, "2.5": 10})])
    assert (goal["shown"], goal["status"]) == ("≤ 2.5 s", "not met")


def test_a_p99_above_every_bucket_is_not_met_and_stays_json_safe():
    goal = goals.lag_goal([_phase("proxy sync c=20", {"+Inf": 5})])
    assert (goal["shown"], goal["status"], goal["value"]) == ("> 60 s", "not met", None)
    json.dumps(goal, allow_nan=False)


@pytest.mark.parametrize(
    "phases",
    [
        [],
        [{"phase": "proxy sync c=1", "sent": 5, "lag": {"available": False, "reason": "no histogram"}}],
        [_phase("proxy sync c=1", {})],  # reachable, but no record in the phase
    ],
)
def test_without_lag_figures_the_goal_is_na(phases):
    goal = goals.lag_goal(phases)
    assert (goal["goal"], goal["shown"], goal["status"], goal["met"]) == ("answer → ledger p99", "n/a", "n/a", None)


def _base_report(record_lag):
    return report.build_report(
        config={"scenarios": ["base"], "latency_ms": 50.0, "requests_per_thread": 5, "warmup_per_thread": 1},
        machine={"cpus": 2},
        proxy_topology={"web_workers": 2, "web_threads": 32, "worker_procs": 2, "worker_threads": 16},
        stub={},
        proxy={},
        record_lag=record_lag,
    )


def test_the_report_has_the_lag_table_and_the_goal():
    phases = [
        _phase("proxy sync c=1", {"0.05": 17}, sent=17),
        _phase("proxy stream c=1", {"0.1": 17}, sent=17, sum_s=1.7),
    ]
    built = json.loads(json.dumps(report._rounded(_base_report(phases)), allow_nan=False))
    assert built["record_lag"]["phases"][1]["lag"]["p50_s"] == 0.1
    assert [g["status"] for g in built["goals"]] == ["met"] and built["goals_met"] == 1
    text = report.render(built)
    assert "answer → ledger: from a job's end" in text and "upper bounds of the buckets" in text
    [row] = [line for line in text.splitlines() if line.startswith("proxy stream c=1")]
    assert row.split() == ["proxy", "stream", "c=1", "17", "17", "≤", "0.1", "s", "≤", "0.1", "s", "100", "ms"]
    assert "answer → ledger p99 (worst of 2 phases: proxy stream c=1)" in text
    assert "gateway goals met: 1/1" in text


def test_an_unreachable_metrics_endpoint_renders_na():
    down = [{"phase": "proxy sync c=1", "sent": 17, "lag": lag.summarize(None, None)}]
    text = report.render(_base_report(down))
    [row] = [line for line in text.splitlines() if line.startswith("proxy sync c=1")]
    assert "n/a" in row and "no llmproxy_record_lag_seconds at /metrics" in row
    assert "gateway goals met: 0/1" in text


def test_without_lag_measurement_the_report_has_neither_table_nor_goal():
    built = _base_report(None)
    assert "record_lag" not in built and "goals" not in built
    assert "answer → ledger" not in report.render(built)
