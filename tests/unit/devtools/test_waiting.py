"""The one poll-with-deadline helper and the one free loopback port, shared by the tests and the benchmark."""

from __future__ import annotations

import socket

import pytest

from llmproxy.devtools.net import free_port
from llmproxy.devtools.waiting import wait_for


def test_returns_the_first_truthy_value():
    answers = iter([None, 0, "", [], {"ready": True}, "later"])
    calls = []

    def condition():
        calls.append(1)
        return next(answers)

    assert wait_for(condition, timeout=5, interval=0) == {"ready": True}
    assert len(calls) == 5  # never called again once it answered


def test_a_condition_true_at_once_is_called_once():
    calls = []
    assert wait_for(lambda: calls.append(1) or "yes", timeout=0) == "yes"
    assert calls == [1]


def test_timeout_raises_naming_what_it_waited_for():
    calls = []
    with pytest.raises(TimeoutError, match="the worker to start"):
        wait_for(lambda: calls.append(1), timeout=0, message="the worker to start")
    assert calls == [1]  # a zero timeout still looks once


def test_what_the_condition_raises_propagates_at_once():
    def exited():
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="the process exited"):
        wait_for(exited, timeout=60)


def test_free_port_can_be_bound_on_loopback():
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
