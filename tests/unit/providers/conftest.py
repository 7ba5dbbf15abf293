"""Fixtures for the provider adapters: a real stub upstream on loopback."""

from __future__ import annotations

import pytest

from llmproxy.devtools.stub_upstream import StubUpstream


@pytest.fixture
def stub():
    """A fresh StubUpstream for one test, stopped afterwards."""
    with StubUpstream() as server:
        yield server
