"""What callers are told about upstream failures: our codes and fixed messages, never the upstream's secrets."""

import json
import logging

import pytest

from llmproxy.jobs.upstream_errors import OUTCOME_MESSAGES, caller_error, log_failure, public_attempts
from llmproxy.providers import ProviderAuthFailed, ProviderBadRequest
from llmproxy.providers.redaction import mask_secrets

LEAKY = "Rate limit reached in organization org-ABC for key sk-live-SECRET123 (Bearer tok-123)"


@pytest.mark.parametrize(
    "text, expected",
    [
        (LEAKY, "Rate limit reached in organization org-*** for key sk-*** (Bearer ***)"),
        ("Incorrect API key provided: sk-proj-abcd****************wxyz.", "Incorrect API key provided: sk-***"),
        ("project proj_Xy12 over quota", "project proj_*** over quota"),
        ("key " + "a1B2" * 8 + " refused", "key *** refused"),
        ("Invalid value for 'temperature': must be at most 2. (task-force, organization)", None),
    ],
)
def test_secrets_are_masked(text, expected):
    assert mask_secrets(text) == (text if expected is None else expected)


def test_a_callers_bad_request_keeps_its_message_masked_with_plain_param_and_code():
    body = {"error": {"message": LEAKY, "type": "invalid_request_error", "param": "temperature", "code": "bad"}}
    error = caller_error(ProviderBadRequest("x", status_code=400, upstream_body=body))
    assert error == {
        "message": mask_secrets(LEAKY),
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "bad",
    }


def test_odd_fields_of_a_bad_request_are_dropped():
    body = {"error": {"message": "no", "type": "org-ABC", "param": "sk-live-SECRET123", "code": "a b c"}}
    error = caller_error(ProviderBadRequest("x", status_code=422, upstream_body=body))
    assert error == {"message": "no", "type": "invalid_request_error", "param": None, "code": "upstream_bad_request"}


def test_other_client_errors_get_a_fixed_message():
    body = {"error": {"message": LEAKY, "type": "invalid_request_error", "param": None, "code": "conflict"}}
    error = caller_error(ProviderBadRequest("x", status_code=409, upstream_body=body))
    assert error["message"] == OUTCOME_MESSAGES["bad_request"] + " (HTTP 409)"
    assert error["code"] == "upstream_bad_request"


def test_public_attempts_replace_any_stored_text_with_the_outcomes_message():
    stored = [
        {"provider": "openai", "model": "m", "outcome": "auth_failed", "status_code": 401, "latency_ms": 3},
        {"provider": "openai", "model": "m", "outcome": "ok", "status_code": 200, "latency_ms": 9, "extra": 1},
    ]
    stored[0]["message"] = LEAKY  # as a row written before this rule kept it
    shown = public_attempts(stored)
    assert shown == [
        {
            "provider": "openai",
            "model": "m",
            "outcome": "auth_failed",
            "status_code": 401,
            "latency_ms": 3,
            "message": OUTCOME_MESSAGES["auth_failed"],
        },
        {"provider": "openai", "model": "m", "outcome": "ok", "status_code": 200, "latency_ms": 9},
    ]
    assert "SECRET" not in json.dumps(shown) and "org-ABC" not in json.dumps(shown)


def test_the_log_keeps_the_upstream_text_masked_with_the_job_id(caplog):
    with caplog.at_level(logging.WARNING, logger="llmproxy.jobs.upstream_errors"):
        log_failure("job_1", "openai", "gpt-4", ProviderAuthFailed(LEAKY, status_code=401))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    line = record.getMessage()
    assert "job_1" in line and "openai/gpt-4" in line and "auth_failed" in line and "Rate limit reached" in line
    assert "SECRET123" not in line and "org-ABC" not in line and "tok-123" not in line
