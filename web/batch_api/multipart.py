"""Reading a multipart/form-data upload as a stream: the file part is handed on as its bytes arrive.

Werkzeug's form parser (`request.files`) reads the whole body before the view runs; here the body is
read READ_BYTES at a time from `request.stream` through Werkzeug's sans-IO decoder, so the file's
bytes pass through the caller's `write` (which measures and spools them) and a file over a limit is
refused at the byte that crosses it. Small fields are collected (at most MAX_FIELD_BYTES each) and
handed to `check` as soon as each is complete, so a bad `purpose` sent before the file is refused
before the file is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from llmproxy.errors import ApiError, bad_request

READ_BYTES = 64 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 16


@dataclass
class Form:
    """What a multipart body held besides the file's bytes."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None  # None: no part named like the file field


def receive_form(
    stream: IO[bytes],
    boundary: str,
    *,
    file_field: str,
    write: Callable[[bytes], None],
    check: Callable[[str, str], None],
) -> Form:
    """Decode the body: the first file part named `file_field` goes to `write`; `check(name, value)` sees each
    field's value and that file's name (as `file_field`) as soon as they are known. Other files are dropped."""
    if not boundary:
        raise bad_request("The multipart body has no boundary", param=file_field)
    decoder = MultipartDecoder(boundary.encode("latin-1"))
    form = Form()
    part: Field | File | None = None
    taking = False  # the current part is the file
    value = bytearray()
    parts = 0
    while True:
        data = stream.read(READ_BYTES)  # over the route's size limit: 413 from the stream itself
        try:
            decoder.receive_data(data or None)
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, (Field, File)):
                    parts += 1
                    if parts > MAX_PARTS:
                        raise ApiError(413, f"More than {MAX_PARTS} parts in the body", code="request_too_large")
                    part, taking = event, isinstance(event, File) and event.name == file_field and form.filename is None
                    value.clear()
                    if taking:
                        form.filename = event.filename  # type: ignore[union-attr]  # a File when taking
                        check(file_field, form.filename)
                elif isinstance(event, Data) and isinstance(part, Field):
                    value += event.data
                    if len(value) > MAX_FIELD_BYTES:
                        raise ApiError(
                            413, f"The field '{part.name}' is too long", code="request_too_large", param=part.name
                        )
                    if not event.more_data:
                        form.fields[part.name] = value.decode("utf-8", "replace")
                        check(part.name, form.fields[part.name])
                elif isinstance(event, Data) and taking:
                    write(event.data)
                event = decoder.next_event()
        except ValueError:
            raise bad_request("The multipart body is malformed", param=file_field) from None
        if isinstance(event, Epilogue) or not data:
            return form
