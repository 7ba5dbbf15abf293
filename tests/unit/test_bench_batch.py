"""`python -m bench.run`, the batch scenario's report from synthetic figures: CPU per line by process and in total,
the goals (drain rate ÷ ideal, the sync probe draining ÷ idle) and their rendering, and `--batch-procs`."""

from __future__ import annotations

import json
import os

import pytest

from bench import batch_report, goals, report
from bench.loadgen import Distribution, LevelResult
from bench.run import parse_args

# The drain's CPU account as bench.cpu makes it (ms per line), with two batch worker processes.
SPENT = {
    "loadgen": 0.5,
    "web": 1.0,
    "worker1": 0.25,
    "batch1": 2.0,
    "batch2": 1.5,
    "writer": 0.75,
    "postgres": 1.5,
    "redis": 0.25,
    "stub": 0.5,
    "other": 0.25,
}


def _probe(p50, errors=0):
    return LevelResult(
        mode="sync",
        concurrency=1,
        requests=30,
        errors=errors,
        duration_s=3.0,
        throughput_rps=10.0,
        latency_ms=Distribution(p50=p50, p90=p50, p99=p50 + 5, mean=p50, min=p50, max=p50 + 9),
    )


def _batch(*, lines_per_s=512.0, idle=50.0, draining=55.0, status="completed", errors=0, probe_errors=0):
    """run_batch's dict for 2 × 16 threads in front of a 50 ms stub (ideal 640 lines/s), plus run.py's topology."""
    return {
        "batch_id": "batch_1",
        "status": status,
        "lines": 500,
        "procs": 2,
        "threads": 16,
        "latency_ms": 50.0,
        "ideal_lines_per_s": 2 * 16 / 0.05,
        "upload_s": 0.1,
        "create_s": 0.2,
        "drain_s": 500 / lines_per_s,
        "finalize_s": None,
        "poll_s": 0.25,
        "lines_per_s": lines_per_s,
        "steady_lines_per_s": lines_per_s,
        "end_to_end_lines_per_s": lines_per_s,
        "request_counts": {"completed": 500 - errors, "failed": errors},
        "output": {
            "output_lines": 500,
            "custom_ids_unique": 500,
            "custom_ids_duplicated": 0,
            "custom_ids_missing": 0,
            "custom_ids_unknown": 0,
            "errors": errors,
            "error_samples": [],
        },
        "cpu": {"cpu_ms_per_request": dict(SPENT), "machine_busy_pct": 90.0},
        "probe_gap_ms": 50.0,
        "probe_idle": _probe(idle),
        "probe_draining": _probe(draining, errors=probe_errors),
        "interactive_procs": 1,
        "interactive_threads": 16,
        "beat": False,
    }


# -- CPU per line ----------------------------------------------------------------------------------------------


def test_cpu_per_line_by_role_with_numbered_processes_summed():
    per = batch_report.cpu_per_line({"cpu_ms_per_request": SPENT}, 400.0)
    by_role = {p["process"]: p for p in per["processes"]}
    assert list(by_role) == ["web", "interactive workers", "batch workers", "writer", "postgres", "redis"]  # no beat
    assert by_role["batch workers"]["ms_per_line"] == pytest.approx(3.5)
    assert by_role["batch workers"]["each"] == {"batch1": 2.0, "batch2": 1.5}
    assert by_role["interactive workers"]["each"] == {"worker1": 0.25}  # not the writer
    assert by_role["batch workers"]["cores"] == pytest.approx(1.4)  # 3.5 ms × 400 lines/s
    assert per["gateway_ms_per_line"] == pytest.approx(1.0 + 0.25 + 3.5 + 0.75 + 1.5 + 0.25)
    assert [p["process"] for p in per["outside"]] == ["stub", "bench client (probe, polls)", "other processes"]
    assert per["machine_ms_per_line"] == pytest.approx(sum(SPENT.values()))
    assert per["machine_cores"] == pytest.approx(sum(SPENT.values()) * 0.4)


def test_beat_is_a_row_when_it_ran():
    per = batch_report.cpu_per_line({"cpu_ms_per_request": {**SPENT, "beat": 0.5}}, None)
    beat = next(p for p in per["processes"] if p["process"] == "beat")
    assert beat["ms_per_line"] == 0.5 and beat["cores"] is None  # no rate: no cores
    assert per["gateway_ms_per_line"] == pytest.approx(7.75)


def test_no_cpu_account_no_cpu_per_line():
    assert batch_report.cpu_per_line(None, 100.0) is None


def test_the_cpu_per_line_table():
    text = "\n".join(batch_report.render_cpu_per_line(batch_report.cpu_per_line({"cpu_ms_per_request": SPENT}, 400.0)))
    rows = {line.split("  ")[0].strip(): line for line in text.splitlines()[3:]}
    assert rows["batch workers"].split() == ["batch", "workers", "3.50", "1.40", "batch1", "2.00,", "batch2", "1.50"]
    assert rows["gateway total"].split()[-2:] == ["7.25", "2.90"]
    assert rows["machine total"].split()[-2:] == ["8.50", "3.40"]


# -- the goals -------------------------------------------------------------------------------------------------


def test_the_batch_goals_met():
    drain, probe = goals.batch_goals(_batch())
    assert drain["goal"] == "batch drain ÷ ideal (2 × 16 threads ÷ 50 ms)"
    assert (drain["value"], drain["shown"], drain["target"], drain["status"]) == (0.8, "0.80×", "≥ 0.8×", "met")
    assert (probe["value"], probe["shown"], probe["target"], probe["status"]) == (1.1, "1.10×", "≤ 1.2×", "met")


def test_the_batch_goals_not_met():
    drain, probe = goals.batch_goals(_batch(lines_per_s=320.0, draining=75.0))
    assert (drain["value"], drain["status"]) == (0.5, "not met")
    assert (probe["value"], probe["status"]) == (1.5, "not met")


@pytest.mark.parametrize(
    ("changes", "which"),
    [({"status": "failed"}, 0), ({"errors": 3}, 0), ({"probe_errors": 1}, 1)],
)
def test_a_goal_is_not_met_when_something_failed(changes, which):
    assert goals.batch_goals(_batch(**changes))[which]["status"] == "not met"


def test_a_probe_without_an_idle_figure_leaves_its_goal_na():
    bat = _batch()
    bat["probe_idle"] = LevelResult(
        mode="sync",
        concurrency=1,
        requests=0,
        errors=0,
        duration_s=0.0,
        throughput_rps=0.0,
        latency_ms=Distribution.of([]),
    )
    assert goals.batch_goals(bat)[1]["status"] == "n/a"


# -- the report ------------------------------------------------------------------------------------------------


def _built(**batch):
    built = report.build_report(
        config={"scenarios": ["batch"], "latency_ms": 50.0},
        machine={"cpus": 2},
        proxy_topology={"web_workers": 2, "web_threads": 32, "worker_procs": 2, "worker_threads": 16},
        stub={},
        proxy={},
        batch=_batch(**batch),
    )
    return json.loads(json.dumps(report._rounded(built), allow_nan=False))  # as written, as the bench renders it


def test_the_report_has_the_cpu_per_line_and_the_goals():
    built = _built()
    assert built["batch"]["cpu_per_line"]["gateway_ms_per_line"] == pytest.approx(7.25)
    assert [g["status"] for g in built["goals"]] == ["met", "met"] and built["goals_met"] == 2
    text = report.render(built)
    assert "celery `batch` 2 × 16 threads" in text and "ideal = 2 × 16 threads / 50 ms" in text
    assert "batch CPU per line while draining" in text
    assert "batch drain ÷ ideal (2 × 16 threads ÷ 50 ms)" in text and "gateway goals met: 2/2" in text
    [cpu_row] = [line for line in text.splitlines() if line.startswith("batch: drain, per line")]
    assert "3.50" in cpu_row.split()  # the CPU table sums batch1 and batch2 into its `batch` column


def test_the_rendered_goals_say_what_was_missed():
    text = report.render(_built(lines_per_s=320.0))
    [line] = [line for line in text.splitlines() if line.startswith("batch drain ÷ ideal")]
    assert line.split()[-5:] == ["0.50×", "≥", "0.8×", "not", "met"]
    assert "gateway goals met: 1/2" in text


# -- the command line ------------------------------------------------------------------------------------------


def test_one_batch_worker_process_per_core_by_default():
    assert parse_args([]).batch_procs == (os.cpu_count() or 1)
    assert parse_args(["--quick", "--scenarios", "base,batch"]).batch_procs == (os.cpu_count() or 1)


def test_batch_procs_is_taken_and_must_be_positive(capsys):
    assert parse_args(["--batch-procs", "3"]).batch_procs == 3
    with pytest.raises(SystemExit):
        parse_args(["--batch-procs", "0"])
    assert "positive" in capsys.readouterr().err
