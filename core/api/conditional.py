"""ETag / If-None-Match / If-Match helpers."""
from __future__ import annotations

import hashlib

from rest_framework.response import Response

from core.errors import ValidationFailed

from .renderers import dumps


def etag_for(data) -> str:
    return '"' + hashlib.blake2b(dumps(data, sort_keys=True), digest_size=10).hexdigest() + '"'


def version_etag(row_id: int, version: int, *, masked: bool = False) -> str:
    """The ETag of a versioned row (a config entry): ``"<id>-<version>"``, with
    ``-m`` when a secret's value was masked (a masked and a revealed answer are
    different representations). :func:`expected_version` reads it back."""
    return f'"{row_id}-{version}-m"' if masked else f'"{row_id}-{version}"'


def not_modified(request, etag: str) -> bool:
    header = request.META.get("HTTP_IF_NONE_MATCH")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


def conditional_response(request, data, *, etag: str | None = None, status: int = 200) -> Response:
    """200 with an ETag, or 304 when the caller already holds this representation."""
    etag = etag or etag_for(data)
    if not_modified(request, etag):
        response = Response(status=304)
    else:
        response = Response(data, status=status)
    response["ETag"] = etag
    return response


_VERSION_DIGITS = 10


def expected_version(request, body_version=None) -> int | None:
    """The version a writer expects: ``If-Match`` (``"3"``, ``"<id>-3"``) or ``"version"`` in the body."""
    header = request.META.get("HTTP_IF_MATCH")
    if header and header.strip() != "*":
        tag = header.split(",")[0].strip().removeprefix("W/").strip('"')
        # A masked read's ETag ("<id>-<version>-m") names the same version.
        tag = tag.removesuffix("-m")
        tail = tag.rsplit("-", 1)[-1] if "-" in tag else tag
        tail = tail.removeprefix("v")
        # "³".isdigit() is True, int("³") fails; a version is a PositiveIntegerField (at most
        # 10 digits), and int() of more than 4,300 digits raises.
        if not (tail.isascii() and tail.isdigit()) or len(tail) > _VERSION_DIGITS:
            raise ValidationFailed("If-Match must carry the entry's ETag or version", code="invalid_precondition")
        return int(tail)
    if body_version is not None:
        if isinstance(body_version, bool) or not isinstance(body_version, int) or body_version < 0:
            raise ValidationFailed("version must be a non-negative integer", details={"version": ["must be an integer"]})
        return body_version
    return None
