"""Request bodies -> rows for `Predictor.prepare`: {column: bytes (image, audio) or str (text, numeric, categorical)}.

Binary inputs come as multipart file parts or as base64 strings; a string is never opened as a path, so a client
cannot make the server read its own files. Every failure is an InputError naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json

from starlette.datastructures import UploadFile
from starlette.requests import Request

from mmcli.deploy.predictor import BINARY_KINDS, InputError

JSON_TYPES = ("application/json",)
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def body_kind(request: Request, allowed: tuple[str, ...]) -> str:
    """The request's media type when it is one of `allowed`, else 415."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in allowed:
        raise InputError(415, "body", f"content type {media or 'missing'!r}; expected {' or '.join(allowed)}")
    return media


async def read_json(request: Request) -> object:
    """The parsed JSON body; 400 when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(400, "body", f"not valid JSON: {exc}") from None


def decode_base64(field: str, value: str) -> bytes:
    """Base64 (standard alphabet, or a data: URL) -> bytes; 400 naming the field when it does not decode."""
    if value.startswith("data:") and ";base64," in value[:200]:
        value = value.split(";base64,", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(400, field, "not valid base64 (binary inputs are sent as base64 data, never as paths)") \
            from None


def row_from_json(obj: object, kinds: dict[str, str], where: str = "inputs") -> dict[str, bytes | str]:
    """{column: value} from a JSON object: base64 strings for binary kinds; strings or numbers otherwise.
    Nulls and empty strings count as missing."""
    if not isinstance(obj, dict):
        raise InputError(422, where, "expected an object {column: value}")
    row: dict[str, bytes | str] = {}
    for name, value in obj.items():
        kind = _kind(kinds, name)
        if value is None or value == "":
            continue
        if kind in BINARY_KINDS:
            if not isinstance(value, str):
                raise InputError(422, name, f"{kind} input must be a base64 string")
            row[name] = decode_base64(name, value)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            row[name] = str(value)
        else:
            raise InputError(422, name, f"{kind} input must be a string or a number")
    return check_row(row, kinds)


async def row_from_form(request: Request, kinds: dict[str, str], max_part_bytes: int) -> dict[str, bytes | str]:
    """{column: value} from a multipart (or urlencoded) form: file parts or base64 fields for binary kinds,
    plain fields (or UTF-8 file parts) for the others."""
    row: dict[str, bytes | str] = {}
    async with request.form(max_part_size=max_part_bytes) as form:
        for name in form:
            kind = _kind(kinds, name)
            values = form.getlist(name)
            if len(values) > 1:
                raise InputError(422, name, "given more than once")
            value = values[0]
            data = await value.read() if isinstance(value, UploadFile) else value
            if not data:
                continue
            if kind in BINARY_KINDS:
                row[name] = data if isinstance(data, bytes) else decode_base64(name, data)
            else:
                row[name] = _utf8(name, data)
    return check_row(row, kinds)


def rows_from_batch(obj: object, kinds: dict[str, str], max_rows: int) -> list[dict[str, bytes | str]]:
    """{"rows": [{column: value}, ...]} -> rows; a bad row raises InputError with `.row` set to its index."""
    rows = obj.get("rows") if isinstance(obj, dict) else None
    if not isinstance(rows, list) or not rows:
        raise InputError(422, "rows", 'expected {"rows": [{column: value}, ...]} with at least one row')
    if len(rows) > max_rows:
        raise InputError(413, "rows", f"{len(rows)} rows; at most {max_rows} per request")
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(row_from_json(row, kinds, where="row"))
        except InputError as exc:
            exc.row = i
            raise
    return out


def check_row(row: dict[str, bytes | str], kinds: dict[str, str]) -> dict[str, bytes | str]:
    """422 when no input is given at all (a model can do without some inputs, not without every one)."""
    if not row:
        takes = ", ".join(f"{n} ({k})" for n, k in kinds.items())
        raise InputError(422, "body", f"no inputs given; this model takes {takes}")
    return row


def _kind(kinds: dict[str, str], name: str) -> str:
    if name not in kinds:
        raise InputError(422, name, f"unknown column; this model takes {', '.join(kinds)}")
    return kinds[name]


def _utf8(name: str, data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(400, name, "not UTF-8 text") from None
