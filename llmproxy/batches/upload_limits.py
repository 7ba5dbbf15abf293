"""The limits of an uploaded batch file, checked while its bytes arrive: size, the key's storage quota,
non-blank lines, not empty.

An upload over a limit is refused at the byte that crosses it, not after the whole body was read.
Lines are counted as at validation: a line break is a newline, a line with only whitespace is blank.
"""

from __future__ import annotations

import re

from llmproxy.batches.storage_quota import StorageRoom
from llmproxy.errors import ApiError, bad_request

# A line that holds something: from a line start, blanks (no newline) then a non-blank byte.
_LINE_WITH_TEXT = re.compile(rb"^[ \t\r\f\v]*\S", re.MULTILINE)
_NON_BLANK = re.compile(rb"\S")


def file_too_large(max_bytes: int) -> ApiError:
    """413 for a file over the size limit."""
    return ApiError(413, f"The file is larger than the limit of {max_bytes} bytes", code="file_too_large", param="file")


class UploadMeter:
    """Measures a file as its bytes pass by: feed() refuses it as soon as it is over a limit."""

    def __init__(self, *, max_bytes: int, max_lines: int, room: StorageRoom | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_lines = max_lines
        self.room = room  # the key's storage quota left when the upload began; None: no quota
        self.size = 0
        self.lines = 0
        self._line_counted = False  # the line under way (not ended by a newline yet) is counted already

    def feed(self, data: bytes) -> None:
        """Count these bytes; 413 `file_too_large`, 413 `storage_quota_exceeded` or 400 `too_many_lines` once over."""
        self.size += len(data)
        if self.size > self.max_bytes:
            raise file_too_large(self.max_bytes)
        if self.room is not None:
            self.room.check(self.size)
        first_break = data.find(b"\n")
        head_end = len(data) if first_break < 0 else first_break
        if not self._line_counted and _NON_BLANK.search(data, 0, head_end):
            self.lines += 1
            self._line_counted = True
        if first_break >= 0:
            # Lines that start in this piece (the position after a newline is a line start for `^`).
            self.lines += len(_LINE_WITH_TEXT.findall(data, first_break + 1))
            self._line_counted = _NON_BLANK.search(data, data.rfind(b"\n") + 1) is not None
        if self.lines > self.max_lines:
            raise bad_request(f"The file has more than {self.max_lines} requests", code="too_many_lines", param="file")

    def finish(self) -> int:
        """The file ended: 400 `empty_file` if it holds no request; else its size in bytes."""
        if self.lines == 0:
            raise bad_request("The file is empty", code="empty_file", param="file")
        return self.size
