"""How batch lines are split into messages (llmproxy.jobs.queues.line_chunks)."""

import pytest

from llmproxy.jobs.queues import LINES_PER_MESSAGE, MIN_MESSAGES, line_chunks


@pytest.mark.parametrize("n", [0, 1, 2, 15, 16, 17, 50, 128, 129, 1000, 1001])
def test_every_line_once_in_order(n):
    ids = [f"job_{i}" for i in range(n)]
    chunks = line_chunks(ids)
    assert [job_id for chunk in chunks for job_id in chunk] == ids
    assert all(0 < len(chunk) <= LINES_PER_MESSAGE for chunk in chunks)


def test_a_few_lines_still_run_side_by_side():
    assert [len(c) for c in line_chunks([str(i) for i in range(10)])] == [1] * 10
    assert sorted(len(c) for c in line_chunks([str(i) for i in range(40)])) == [2] * 8 + [3] * 8
    assert len(line_chunks([str(i) for i in range(17)])) == MIN_MESSAGES


def test_a_window_of_lines_shares_each_message_cost():
    assert len(line_chunks([str(i) for i in range(1000)])) == 1000 // LINES_PER_MESSAGE


def test_replacements_fill_messages():
    assert [len(c) for c in line_chunks([str(i) for i in range(20)], spread=False)] == [7, 7, 6]
