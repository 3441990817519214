"""Walk an API's pages (page number, offset/limit, cursor, RFC 8288 Link header) and validate each page.

One page is held in memory at a time: :func:`iter_pages` yields a page, the caller stores it, and only then
is the next page requested.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from airbricks.ingestion.config import (
    CursorPagination,
    DatasetConfig,
    LinkHeaderPagination,
    NoPagination,
    OffsetPagination,
    PageNumberPagination,
)
from airbricks.ingestion.http import ApiClient, HttpResponse


class PageValidationError(ValueError):
    """A page is not valid JSON or its records miss required fields. Names source, page and URL."""


class PaginationError(RuntimeError):
    """Pagination went wrong: a repeating cursor/next URL, the max-pages limit, a foreign next link."""


@dataclass(frozen=True)
class Page:
    """One page as received, plus what validation learned about it."""

    number: int  # 1-based position in this interval's walk (part-00001 is page 1)
    url: str  # masked: safe to log and to store in the manifest
    body: bytes
    records: int


_MISSING = object()


def resolve_path(document: Any, path: str) -> Any:
    """Resolve a dotted JSON path: ``$`` (the document), ``hits``, ``$.meta.next``, ``data.0.id``.

    A dozen lines instead of a JSONPath engine: only member access is needed, and jsonpath-ng would add
    import cost to DAG parsing (config validation) plus filter syntax nobody should rely on here.
    Returns ``_MISSING`` when a step does not exist.
    """
    parts = [p for p in path.strip().split(".") if p]
    if parts and parts[0] == "$":
        parts = parts[1:]
    current = document
    for part in parts:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif (
            isinstance(current, list)
            and part.lstrip("-").isdigit()
            and -len(current) <= int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            return _MISSING
    return current


class _PageChecker:
    def __init__(self, source: str, dataset: str, config: DatasetConfig) -> None:
        self.where = f"{source}/{dataset}"
        self.records_path = config.records_path
        self.required: Sequence[str] = config.required_fields

    def check(self, number: int, response: HttpResponse) -> tuple[Any, int]:
        """Parse the page and check its records; return (document, record count)."""
        prefix = f"{self.where}: page {number} ({response.url})"
        try:
            document = json.loads(response.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PageValidationError(f"{prefix} is not valid JSON: {exc}") from exc
        records = resolve_path(document, self.records_path)
        if records is _MISSING:
            raise PageValidationError(f"{prefix}: records_path '{self.records_path}' not found in the page")
        if not isinstance(records, list):
            raise PageValidationError(
                f"{prefix}: records_path '{self.records_path}' is a {type(records).__name__}, expected a list"
            )
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise PageValidationError(
                    f"{prefix}: record {index} is a {type(record).__name__}, not an object"
                )
            missing = [f for f in self.required if record.get(f) is None]
            if missing:
                raise PageValidationError(
                    f"{prefix}: record {index} misses required field(s) {missing} "
                    f"(required_fields: {list(self.required)})"
                )
        return document, len(records)


def _int_at(document: Any, path: str, what: str, prefix: str) -> int:
    value = resolve_path(document, path)
    if value is _MISSING or isinstance(value, bool) or not isinstance(value, int | str):
        raise PageValidationError(f"{prefix}: {what} '{path}' missing or not an integer")
    try:
        return int(value)
    except ValueError as exc:
        raise PageValidationError(f"{prefix}: {what} '{path}' is not an integer: {value!r}") from exc


def iter_pages(
    client: ApiClient,
    source: str,
    dataset: str,
    config: DatasetConfig,
    query_params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Iterator[Page]:
    """Yield each validated page of ``config`` in order, stopping as its pagination style says.

    :param client: the API client (base URL, auth, retries).
    :param query_params: rendered query params (default: ``config.query_params`` as-is).
    :param headers: rendered extra headers (default: ``config.headers``).
    :raises PageValidationError: a page is not JSON or a record misses a required field.
    :raises PaginationError: loop detected, max pages exceeded, or a next link to another host.
    """
    style = config.pagination
    params = dict(config.query_params if query_params is None else query_params)
    headers = dict(config.headers if headers is None else headers)
    checker = _PageChecker(source, dataset, config)
    max_pages = client.policy.max_pages
    where = f"{source}/{dataset}"
    first_url = client.endpoint.url_for(config.path)
    origin = urlsplit(first_url)[:2]

    page_value = style.start_page if isinstance(style, PageNumberPagination) else 0
    offset = style.start_offset if isinstance(style, OffsetPagination) else 0
    cursor: str | None = None
    seen_cursors: set[str] = set()
    seen_urls: set[str] = set()
    previous_digest: bytes | None = None
    next_url: str | None = None
    number = 0

    while True:
        number += 1
        if number > max_pages:
            raise PaginationError(
                f"{where}: more than max_pages={max_pages} pages; raise http.max_pages for this source if "
                "that is expected, else the API is not ending pagination"
            )
        if isinstance(style, LinkHeaderPagination) and next_url is not None:
            url = client.build_url(next_url)
        else:
            request_params = dict(params)
            if isinstance(style, PageNumberPagination):
                request_params[style.page_param] = str(page_value)
            elif isinstance(style, OffsetPagination):
                request_params[style.offset_param] = str(offset)
                request_params[style.limit_param] = str(style.limit)
            elif isinstance(style, CursorPagination) and cursor is not None:
                request_params[style.cursor_param] = cursor
            url = client.build_url(first_url, request_params)
        seen_urls.add(url)

        response = client.get(url, headers=headers)
        document, records = checker.check(number, response)
        yield Page(number=number, url=response.url, body=response.body, records=records)
        prefix = f"{where}: page {number} ({response.url})"

        if isinstance(style, NoPagination):
            return
        if isinstance(style, PageNumberPagination | OffsetPagination):
            # An API that ignores the page/offset param returns the same page forever.
            digest = hashlib.sha256(response.body).digest()
            if records and digest == previous_digest:
                raise PaginationError(
                    f"{prefix} is byte-identical to page {number - 1}: pagination loop (does the API "
                    "honour the page/offset parameter?)"
                )
            previous_digest = digest
        if isinstance(style, PageNumberPagination):
            # The API's own total wins over an empty page: an empty page before the last one means the API
            # lost data mid-walk, and publishing what we have would pass a partial interval off as complete.
            if style.total_pages_path:
                total = _int_at(document, style.total_pages_path, "total_pages_path", prefix)
                if page_value - style.start_page + 1 >= total:
                    return
                if records == 0:
                    raise PageValidationError(
                        f"{prefix} is empty but '{style.total_pages_path}' says {total} pages: refusing to "
                        "publish a partial interval"
                    )
            elif records == 0:
                return
            page_value += 1
        elif isinstance(style, OffsetPagination):
            total = _int_at(document, style.total_path, "total_path", prefix) if style.total_path else None
            if total is not None and offset + records < total and records < style.limit:
                raise PageValidationError(
                    f"{prefix} has {records} records but '{style.total_path}' says {total} in all and only "
                    f"{offset + records} were read: refusing to publish a partial interval"
                )
            if records == 0 or records < style.limit:
                return
            offset += records
            if total is not None and offset >= total:
                return
        elif isinstance(style, CursorPagination):
            token = resolve_path(document, style.cursor_path)
            if token is _MISSING or token is None or token == "" or (style.stop_on_empty and records == 0):
                return
            token = str(token)
            if token in seen_cursors:
                raise PaginationError(
                    f"{prefix}: cursor {token!r} from '{style.cursor_path}' was already used: pagination loop"
                )
            seen_cursors.add(token)
            cursor = token
        elif isinstance(style, LinkHeaderPagination):
            link = response.links.get("next", {}).get("url")
            if not link:
                return
            absolute = urljoin(first_url if next_url is None else next_url, link)
            if urlsplit(absolute)[:2] != origin:
                # Following it would send our credentials to another host.
                raise PaginationError(
                    f'{prefix}: rel="next" link points to another origin '
                    f"({client.masked(absolute)}); refusing to follow"
                )
            if client.build_url(absolute) in seen_urls:
                raise PaginationError(
                    f'{prefix}: rel="next" link {client.masked(absolute)} was already fetched: '
                    "pagination loop"
                )
            next_url = absolute
        # Keep at most one page alive while the next one downloads.
        del response, document
