"""Files of the Batch API: POST /v1/files (multipart), GET /v1/files[/{id}[/content]], DELETE /v1/files/{id}."""

from __future__ import annotations

import re
import tempfile

from flask import Blueprint, Response, jsonify, request

from llmproxy import json_schema as js
from llmproxy.batches import files, storage_quota
from llmproxy.batches.file_chunks import stream_chunks
from llmproxy.batches.upload_limits import UploadMeter
from llmproxy.errors import bad_request
from llmproxy.storage.models import StoredFile
from web.auth import authenticate_client, current_key
from web.batch_api import multipart
from web.context import db, release_connection, resources
from web.listing import limit_param, limit_schema, list_response, list_schema
from web.openapi.operation import Auth, Reply, json_reply, operation

bp = Blueprint("files", __name__, url_prefix="/v1/files")
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the purpose field around the file
MAX_LIST = 10_000
_UPLOAD = js.obj(
    {"file": js.string(contentMediaType="application/jsonl"), "purpose": js.enum((files.FilePurpose.BATCH.value,))},
    required=["file", "purpose"],
)
_THE_FILE = {200: json_reply("The file.", files.FILE_SCHEMA)}


@bp.before_request
def _authenticate_and_size():
    if request.endpoint == "files.upload_file":
        # Uploads may be far larger than a chat request (the app's MAX_CONTENT_LENGTH): this route only.
        request.max_content_length = resources().settings.max_batch_file_bytes + MULTIPART_OVERHEAD
    authenticate_client()


@bp.post("")
@operation(auth=Auth.KEY, body=_UPLOAD, body_media="multipart/form-data", replies=_THE_FILE)
def upload_file():
    """Store a batch input file: multipart `file` and `purpose=batch`, streamed to storage as it arrives."""
    if request.mimetype != "multipart/form-data":
        raise bad_request(
            "Missing required parameter: 'file' (multipart/form-data)", code="missing_field", param="file"
        )
    settings = resources().settings
    key_id = current_key().id
    meter = UploadMeter(
        max_bytes=settings.max_batch_file_bytes,
        max_lines=settings.max_batch_lines,
        room=storage_quota.storage_room(db(), key_id, settings),
    )
    release_connection()  # a slow upload holds no connection (the storing transaction checks the quota again)
    # The file goes to a temporary file on disk as it arrives (never whole in memory), measured on the way;
    # it is copied into the database once whole and within the limits, in one short transaction.
    with tempfile.TemporaryFile(prefix="llmproxy-upload-") as spool:

        def take(data: bytes) -> None:
            meter.feed(data)
            spool.write(data)

        form = multipart.receive_form(
            request.stream,
            request.mimetype_params.get("boundary", ""),
            file_field="file",
            write=take,
            check=_check_part,
        )
        if form.filename is None:
            raise bad_request(
                "Missing required parameter: 'file' (multipart/form-data)", code="missing_field", param="file"
            )
        if "purpose" not in form.fields:
            raise bad_request("Missing required parameter: 'purpose'", code="missing_field", param="purpose")
        size = meter.finish()
        spool.seek(0)
        row = files.upload_file(
            db(),
            api_key_id=key_id,
            purpose=form.fields["purpose"],
            filename=form.filename or "upload.jsonl",
            source=spool,
            size=size,
            settings=settings,
        )
    return jsonify(files.file_json(row))


def _check_part(name: str, value: str) -> None:
    # Refuse a bad purpose or file name as soon as it arrives, not after the file was read.
    if name == "purpose":
        files.check_purpose(value)
    elif name == "file":
        files.check_filename(value)


@bp.get("")
@operation(
    auth=Auth.KEY,
    query={
        "purpose": js.string(),
        "limit": limit_schema(MAX_LIST),
        "order": js.enum(("asc", "desc")),
        "after": js.string(),
    },
    replies={200: json_reply("This key's files.", list_schema(files.FILE_SCHEMA))},
)
def list_files():
    """This key's files: ?purpose=&limit=&order=asc|desc&after=."""
    limit = limit_param(default=MAX_LIST, maximum=MAX_LIST)
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("'order' must be 'asc' or 'desc'", param="order")
    page, has_more = files.list_files(
        db(),
        current_key().id,
        purpose=request.args.get("purpose"),
        limit=limit,
        after=request.args.get("after"),
        newest_first=order == "desc",
    )
    return list_response([files.file_json(row) for row in page], has_more)


@bp.get("/<file_id>")
@operation(auth=Auth.KEY, replies=_THE_FILE)
def get_file(file_id):
    """The file object."""
    return jsonify(files.file_json(files.get_own_file(db(), current_key().id, file_id)))


@bp.get("/<file_id>/content")
@operation(auth=Auth.KEY, replies={200: Reply("The file's bytes.", {"application/octet-stream": js.string()})})
def file_content(file_id):
    """The file's bytes (JSONL), streamed a chunk at a time."""
    return download(files.get_own_file(db(), current_key().id, file_id))


def download(row: StoredFile) -> Response:
    """A stored file's bytes as an attachment, streamed a chunk at a time (the admin's dashboard uses it too)."""
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", row.filename) or "file.jsonl"
    return Response(
        stream_chunks(resources().session_factory, row.id),
        mimetype="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe_name}"',
            # A download cut short (the file was deleted meanwhile) is then visibly short to the client.
            "Content-Length": str(row.size_bytes),
        },
    )


@bp.delete("/<file_id>")
@operation(auth=Auth.KEY, replies={200: json_reply("Deleted.", files.DELETED_FILE_SCHEMA)})
def delete_file(file_id):
    """Delete the file; OpenAI's deletion object."""
    return jsonify(files.delete_file(db(), files.get_own_file(db(), current_key().id, file_id)))
