"""The upload meter counts what validation counts (non-blank lines) wherever the pieces of the file are cut."""

from __future__ import annotations

import pytest

from llmproxy.batches.storage_quota import StorageRoom
from llmproxy.batches.upload_limits import UploadMeter
from llmproxy.errors import ApiError

SAMPLES = [
    b'{"a": 1}\n{"b": 2}\n',
    b'{"a": 1}\n\n  \t\n{"b": 2}',  # blank lines, no final newline
    b"  x\r\n\r\n \r\ny \n\n\n",
    b"\n\n\n",
    b"   ",
    b"",
    b"one line without newline",
    b"\x0b\x0c\n \t z\n",
]


def reference(content: bytes) -> int:
    return sum(1 for line in content.split(b"\n") if line.strip())


def measured(pieces: list[bytes], max_lines: int = 1000) -> UploadMeter:
    meter = UploadMeter(max_bytes=10_000, max_lines=max_lines)
    for piece in pieces:
        meter.feed(piece)
    return meter


@pytest.mark.parametrize("content", SAMPLES)
def test_lines_are_counted_the_same_wherever_the_file_is_cut(content):
    for i in range(len(content) + 1):
        for j in range(i, len(content) + 1):
            meter = measured([content[:i], content[i:j], content[j:]])
            assert (meter.lines, meter.size) == (reference(content), len(content)), (i, j)


def test_limits_refuse_as_soon_as_they_are_crossed():
    with pytest.raises(ApiError) as too_many:
        measured([b"a\n" * 3, b"b\n"], max_lines=3)
    assert (too_many.value.status, too_many.value.code) == (400, "too_many_lines")
    assert measured([b"a\n" * 3, b"\n \n" * 100], max_lines=3).lines == 3  # blank lines do not count
    meter = UploadMeter(max_bytes=10, max_lines=100)
    meter.feed(b"x" * 10)
    with pytest.raises(ApiError) as too_big:
        meter.feed(b"y")
    assert (too_big.value.status, too_big.value.code, too_big.value.param) == (413, "file_too_large", "file")


def test_an_empty_file_is_refused_at_its_end():
    for content in (b"", b"\n \n\t\n"):
        with pytest.raises(ApiError) as empty:
            measured([content]).finish()
        assert (empty.value.status, empty.value.code) == (400, "empty_file")
    assert measured([b"x\n"]).finish() == 2


def test_the_storage_quota_stops_the_upload_at_the_byte_that_crosses_it():
    meter = UploadMeter(max_bytes=10_000, max_lines=100, room=StorageRoom(limit=1000, used=990))
    meter.feed(b"x" * 10)  # exactly the room left
    with pytest.raises(ApiError) as over:
        meter.feed(b"y")
    assert (over.value.status, over.value.code, over.value.param) == (413, "storage_quota_exceeded", "file")
    assert "1000 bytes" in over.value.message and "990 are in use" in over.value.message
