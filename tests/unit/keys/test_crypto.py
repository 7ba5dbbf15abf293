"""AES-GCM at rest: round trip, fresh nonces, tampering and wrong keys are detected."""

import os

import pytest

from llmproxy.keys import crypto

KEY = os.urandom(32)


def test_round_trip_and_fresh_nonce():
    a = crypto.encrypt("sk-secret", key=KEY, context="provider:openai")
    b = crypto.encrypt("sk-secret", key=KEY, context="provider:openai")
    assert a != b  # a fresh nonce per value
    assert a.startswith("v1.")
    assert "sk-secret" not in a
    assert crypto.decrypt(a, key=KEY, context="provider:openai") == "sk-secret"


@pytest.mark.parametrize("position", [0, 12, 20, -1])  # nonce, ciphertext, tag
def test_tampered_ciphertext_is_detected(position):
    import base64

    sealed = crypto.encrypt("sk-secret", key=KEY, context="c")
    head, payload = sealed.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload))
    raw[position] ^= 0x01  # flip one bit of the decoded bytes (a base64 character may hide unused bits)
    with pytest.raises(crypto.TamperedError):
        crypto.decrypt(f"{head}.{base64.urlsafe_b64encode(bytes(raw)).decode()}", key=KEY, context="c")


def test_value_moved_to_another_row_is_detected():
    sealed = crypto.encrypt("sk-secret", key=KEY, context="credential:key_a:openai")
    with pytest.raises(crypto.TamperedError):
        crypto.decrypt(sealed, key=KEY, context="credential:key_b:openai")


def test_wrong_key_is_detected():
    sealed = crypto.encrypt("sk-secret", key=KEY, context="c")
    with pytest.raises(crypto.WrongKeyError):
        crypto.decrypt(sealed, key=os.urandom(32), context="c")


@pytest.mark.parametrize("value", ["", "garbage", "v2.abc.def", "v1.xx", f"v1.{crypto.key_id(KEY)}.!!!"])
def test_malformed_values_raise(value):
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(value, key=KEY, context="c")
