"""Every pagination style, loop detection and page validation, against routes on the real replay server."""

from __future__ import annotations

import json

import pytest

from airbricks.ingestion.config import DatasetConfig, HttpPolicy
from airbricks.ingestion.http import ApiClient, ApiEndpoint
from airbricks.ingestion.pagination import (
    PageValidationError,
    PaginationError,
    iter_pages,
    resolve_path,
)

pytestmark = pytest.mark.integration

POLICY = HttpPolicy(max_attempts=1, max_pages=20)


def _walk(replay, path, pagination, *, records_path="$", required=(), params=None, policy=POLICY):
    config = DatasetConfig(
        path=path,
        pagination=pagination,
        records_path=records_path,
        required_fields=required,
        query_params=params or {},
    )
    with ApiClient(ApiEndpoint("src", replay.url), policy, sleep=lambda s: None) as client:
        return list(iter_pages(client, "src", "ds", config))


def _queries(replay, path):
    return [r.query for r in replay.requests if r.path == path]


def test_resolve_path():
    doc = {"a": {"b": [10, {"c": "x"}]}}
    assert resolve_path(doc, "$") is doc
    assert resolve_path(doc, "a.b.1.c") == "x"
    assert resolve_path(doc, "$.a.b.0") == 10
    assert resolve_path(doc, "a.zz") is not doc
    assert resolve_path(doc, "a.zz") is resolve_path(doc, "q")


def test_page_number_stops_at_total_pages(replay_server):
    pages = _walk(
        replay_server,
        "/api/v1/search_by_date",
        {"style": "page_number", "page_param": "page", "start_page": 0, "total_pages_path": "nbPages"},
        records_path="hits",
        required=("objectID", "title", "created_at_i"),
        params={"hitsPerPage": "100"},
    )
    assert [p.number for p in pages] == [1, 2, 3]
    assert [q["page"] for q in _queries(replay_server, "/api/v1/search_by_date")] == ["0", "1", "2"]
    assert all(q["hitsPerPage"] == "100" for q in _queries(replay_server, "/api/v1/search_by_date"))
    assert sum(p.records for p in pages) > 0


def test_page_number_stops_on_empty_page_and_keeps_it(replay_server):
    for page, items in (("1", [{"id": 1}, {"id": 2}]), ("2", [{"id": 3}]), ("3", [])):
        replay_server.add_route("GET", "/p", {"items": items}, match={"page": page})
    pages = _walk(replay_server, "/p", {"style": "page_number"}, records_path="items", required=("id",))
    assert [p.records for p in pages] == [2, 1, 0]
    assert json.loads(pages[2].body) == {"items": []}


def test_page_number_detects_an_api_ignoring_the_page_param(replay_server):
    replay_server.add_route("GET", "/same", [{"id": 1}])
    with pytest.raises(PaginationError, match=r"page 2 .* byte-identical to page 1"):
        _walk(replay_server, "/same", {"style": "page_number"})


def test_offset_limit_stops_on_short_page(replay_server):
    replay_server.add_route("GET", "/o", {"data": [{"id": 1}, {"id": 2}]}, match={"offset": "0"})
    replay_server.add_route("GET", "/o", {"data": [{"id": 3}, {"id": 4}]}, match={"offset": "2"})
    replay_server.add_route("GET", "/o", {"data": [{"id": 5}]}, match={"offset": "4"})
    pages = _walk(replay_server, "/o", {"style": "offset", "limit": 2}, records_path="data")
    assert [p.records for p in pages] == [2, 2, 1]
    assert [(q["offset"], q["limit"]) for q in _queries(replay_server, "/o")] == [
        ("0", "2"),
        ("2", "2"),
        ("4", "2"),
    ]


def test_offset_stops_at_total(replay_server):
    replay_server.add_route("GET", "/t", {"total": 4, "data": [{"id": 1}, {"id": 2}]}, match={"offset": "0"})
    replay_server.add_route("GET", "/t", {"total": 4, "data": [{"id": 3}, {"id": 4}]}, match={"offset": "2"})
    pages = _walk(
        replay_server, "/t", {"style": "offset", "limit": 2, "total_path": "total"}, records_path="data"
    )
    assert len(pages) == 2


def test_cursor_follows_token_until_absent(replay_server):
    replay_server.add_route("GET", "/c", {"items": [{"id": 1}], "meta": {"next": "abc"}})  # no cursor param
    replay_server.add_route(
        "GET", "/c", {"items": [{"id": 2}], "meta": {"next": "def"}}, match={"after": "abc"}
    )
    replay_server.add_route(
        "GET", "/c", {"items": [{"id": 3}], "meta": {"next": None}}, match={"after": "def"}
    )
    pages = _walk(
        replay_server,
        "/c",
        {"style": "cursor", "cursor_param": "after", "cursor_path": "meta.next"},
        records_path="items",
    )
    assert len(pages) == 3
    assert [q.get("after") for q in _queries(replay_server, "/c")] == [None, "abc", "def"]


def test_cursor_loop_is_detected(replay_server):
    replay_server.add_route("GET", "/c", {"items": [{"id": 1}], "meta": {"next": "abc"}})
    replay_server.add_route(
        "GET", "/c", {"items": [{"id": 2}], "meta": {"next": "def"}}, match={"after": "abc"}
    )
    replay_server.add_route(
        "GET", "/c", {"items": [{"id": 3}], "meta": {"next": "abc"}}, match={"after": "def"}
    )
    with pytest.raises(PaginationError, match=r"page 3 .*cursor 'abc' .* already used: pagination loop"):
        _walk(
            replay_server,
            "/c",
            {"style": "cursor", "cursor_param": "after", "cursor_path": "meta.next"},
            records_path="items",
        )


def test_link_header_follows_rel_next(replay_server):
    pages = _walk(
        replay_server,
        "/repos/apache/airflow/issues",
        {"style": "link_header"},
        required=("id", "number", "title", "updated_at"),
        params={"per_page": "100", "state": "all"},
    )
    assert len(pages) == 2
    queries = _queries(replay_server, "/repos/apache/airflow/issues")
    assert queries[1]["page"] == "2"
    assert queries[1]["per_page"] == "100"


def test_link_header_loop_is_detected(replay_server):
    replay_server.add_route(
        "GET", "/l", [{"id": 1}], headers={"Link": f'<{replay_server.url}/l?p=2>; rel="next"'}
    )
    replay_server.add_route(
        "GET",
        "/l",
        [{"id": 2}],
        match={"p": "2"},
        headers={"Link": f'<{replay_server.url}/l?p=2>; rel="next"'},
    )
    with pytest.raises(PaginationError, match=r"page 2 .*rel=\"next\" link .*/l\?p=2 was already fetched"):
        _walk(replay_server, "/l", {"style": "link_header"})


def test_link_header_to_another_origin_is_refused(replay_server):
    replay_server.add_route(
        "GET", "/l", [{"id": 1}], headers={"Link": '<https://elsewhere.example/l?p=2>; rel="next"'}
    )
    with pytest.raises(PaginationError, match="another origin"):
        _walk(replay_server, "/l", {"style": "link_header"})


def test_relative_next_link_is_resolved(replay_server):
    replay_server.add_route("GET", "/r", [{"id": 1}], headers={"Link": '</r?p=2>; rel="next"'})
    replay_server.add_route("GET", "/r", [{"id": 2}], match={"p": "2"})
    assert len(_walk(replay_server, "/r", {"style": "link_header"})) == 2


def test_max_pages_limit(replay_server):
    replay_server.add_synthetic("/many", pages=50, per_page=1, style="hackernews")
    with pytest.raises(PaginationError, match="more than max_pages=5"):
        _walk(
            replay_server,
            "/many",
            {"style": "page_number", "start_page": 0, "total_pages_path": "nbPages"},
            records_path="hits",
            policy=POLICY.model_copy(update={"max_pages": 5}),
        )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("{truncated", r"src/ds: page 2 \(http://127\.0\.0\.1:\d+/v\?page=2\) is not valid JSON"),
        ({"items": [{"id": 1}, {"name": "x"}]}, r"page 2 .*record 1 misses required field\(s\) \['id'\]"),
        ({"items": [{"id": None}]}, r"page 2 .*record 0 misses required field\(s\) \['id'\]"),
        ({"items": {"id": 1}}, r"page 2 .*records_path 'items' is a dict, expected a list"),
        ({"other": []}, r"page 2 .*records_path 'items' not found"),
        ({"items": [1]}, r"page 2 .*record 0 is a int, not an object"),
    ],
)
def test_bad_page_is_reported_with_page_number_and_url(replay_server, body, match):
    replay_server.add_route("GET", "/v", {"items": [{"id": 1}]}, match={"page": "1"})
    replay_server.add_route("GET", "/v", body, match={"page": "2"})
    with pytest.raises(PageValidationError, match=match):
        _walk(replay_server, "/v", {"style": "page_number"}, records_path="items", required=("id",))


def test_prefetch_sends_exactly_the_requests_of_a_sequential_walk(replay_server):
    """With a known total the next page downloads while the current one is parsed: same requests, same
    order, nothing past the last page."""
    replay_server.add_synthetic("/many", pages=6, per_page=3, style="hackernews")
    pages = _walk(
        replay_server,
        "/many",
        {"style": "page_number", "start_page": 0, "total_pages_path": "nbPages"},
        records_path="hits",
        required=("objectID",),
    )
    assert [p.number for p in pages] == [1, 2, 3, 4, 5, 6]
    assert [q["page"] for q in _queries(replay_server, "/many")] == ["0", "1", "2", "3", "4", "5"]
    assert [json.loads(p.body)["page"] for p in pages] == [0, 1, 2, 3, 4, 5]  # each body is its own page


def test_prefetch_of_a_page_the_api_no_longer_has_is_discarded(replay_server):
    # The total shrinks from 3 to 2 pages mid-walk: page 2 was already prefetched, but is not yielded.
    replay_server.add_route("GET", "/s", {"n": 2, "items": [{"id": 1}]}, match={"page": "1"})
    replay_server.add_route("GET", "/s", {"n": 3, "items": [{"id": 0}]}, match={"page": "0"})
    replay_server.add_route("GET", "/s", {"n": 3, "items": [{"id": 2}]}, match={"page": "2"})
    # page 1 says 2 pages; page 0 said 3, so page 2 is requested while page 1 is parsed
    pages = _walk(
        replay_server,
        "/s",
        {"style": "page_number", "start_page": 0, "total_pages_path": "n"},
        records_path="items",
    )
    assert [json.loads(p.body)["items"][0]["id"] for p in pages] == [0, 1]
    assert [q["page"] for q in _queries(replay_server, "/s")] == ["0", "1", "2"]


def test_a_failing_page_stops_the_walk_with_no_request_left_running(replay_server):
    for page in range(6):
        record = {"title": "no id"} if page == 2 else {"id": page}
        replay_server.add_route("GET", "/f", {"n": 6, "items": [record]}, match={"page": str(page)})
    with pytest.raises(PageValidationError, match=r"page 3 .*record 0 misses required field\(s\) \['id'\]"):
        _walk(
            replay_server,
            "/f",
            {"style": "page_number", "start_page": 0, "total_pages_path": "n"},
            records_path="items",
            required=("id",),
        )
    sent = _queries(replay_server, "/f")
    assert [q["page"] for q in sent] == ["0", "1", "2", "3"]  # page 3 was prefetched, and has finished
    assert _queries(replay_server, "/f") == sent


def test_pages_only_the_standard_json_parser_accepts_are_still_accepted(replay_server):
    # NaN and a lone surrogate escape are not strict JSON, but json.loads always accepted them: so do we.
    body = b'{"items": [{"id": NaN, "name": "\\ud800"}]}'
    replay_server.add_route("GET", "/n", body, headers={"Content-Type": "application/json"})
    pages = _walk(replay_server, "/n", {"style": "none"}, records_path="items", required=("id",))
    assert [(p.records, p.body) for p in pages] == [(1, body)]


# ---- the typed fast path accepts and refuses exactly what the generic path does --------------------------
HITS_TOTAL = {"style": "page_number", "page_param": "p", "start_page": 0, "total_pages_path": "nbPages"}
NESTED_TOTAL = {"style": "offset", "limit": 2, "total_path": "meta.paging.total"}
CURSOR = {"style": "cursor", "cursor_param": "c", "cursor_path": "meta.next"}
TYPED_CASES = [
    # (records_path, pagination, page body)
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":"a","x":{"y":[1,null]}}],"nbPages":3}'),
    ("hits", HITS_TOTAL, b'{"hits":[],"nbPages":0}'),
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":null}],"nbPages":3}'),  # null required field
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1}],"nbPages":3}'),  # missing required field
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":null,"t":"a"}],"nbPages":3}'),  # duplicate key: last wins
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":"a","t":null}],"nbPages":3}'),
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":"a"}],"nbPages":"3"}'),  # total as a string
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":"a"}]}'),  # no total
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":"a"}],"nbPages":1,"nbPages":2}'),
    ("hits", HITS_TOTAL, b'{"hits":[1,2],"nbPages":1}'),  # records that are not objects
    ("hits", HITS_TOTAL, b'{"hits":{"id":1},"nbPages":1}'),  # records not a list
    ("hits", HITS_TOTAL, b'{"hits":null,"nbPages":1}'),
    ("hits", HITS_TOTAL, b'{"nbPages":1}'),  # no records
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":"a","v":NaN}],"nbPages":1}'),  # only json.loads accepts NaN
    (
        "hits",
        HITS_TOTAL,
        b'{"hits":[{"id":1,"t":"a","s":"\xff"}],"nbPages":1}',
    ),  # bad UTF-8 in a skipped field
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":"a","s":[1,}]}'),  # bad JSON in a skipped field
    ("hits", HITS_TOTAL, b'{"hits":[{"id":1,"t":"a"}]} trailing'),
    ("hits", HITS_TOTAL, b"[]"),  # page is a list, records expected under a key
    ("$", {"style": "none"}, b'[{"id":1,"t":"a"},{"id":2,"t":"b","z":{}}]'),
    ("$", {"style": "none"}, b'[{"id":1,"t":"a"},{"id":2}]'),
    ("data.items", NESTED_TOTAL, b'{"data":{"items":[{"id":1,"t":"a"}]},"meta":{"paging":{"total":7}}}'),
    ("data.items", NESTED_TOTAL, b'{"data":{"items":[{"id":1,"t":"a"}]},"meta":{"paging":null}}'),
    ("data.items", NESTED_TOTAL, b'{"data":{"items":[{"id":1,"t":"a"}]},"meta":5}'),
    ("data", CURSOR, b'{"data":[{"id":1,"t":"a"}],"meta":{"next":"abc"}}'),
    ("data", CURSOR, b'{"data":[{"id":1,"t":"a"}],"meta":{"next":null}}'),
    ("data", CURSOR, b'{"data":[{"id":1,"t":true}],"meta":{}}'),
]
PAGINATION_PATHS = {"nbPages", "meta.paging.total", "meta.next"}


def _checkers(records_path: str, pagination: dict):
    from airbricks.ingestion.pagination import _PageChecker

    config = DatasetConfig(
        path="/p", pagination=pagination, records_path=records_path, required_fields=["id", "t"]
    )
    fast, generic = _PageChecker("src", "ds", config), _PageChecker("src", "ds", config)
    generic.typed = None
    return fast, generic


def _outcome(checker, body: bytes):
    from airbricks.ingestion.http import HttpResponse

    response = HttpResponse(url="http://api/p", status=200, body=body, headers={}, links={}, attempts=1)
    try:
        document, records = checker.check(1, response)
    except PageValidationError as error:
        return ("refused", str(error))
    from airbricks.ingestion.pagination import _MISSING

    values = {path: resolve_path(document, path) for path in PAGINATION_PATHS}
    return ("accepted", records, {path: value for path, value in values.items() if value is not _MISSING})


@pytest.mark.parametrize(("records_path", "pagination", "body"), TYPED_CASES)
def test_typed_fast_path_matches_the_generic_checks(records_path, pagination, body):
    fast, generic = _checkers(records_path, pagination)
    assert fast.typed is not None  # these configurations take the fast path

    assert _outcome(fast, body) == _outcome(generic, body)


def test_unusual_paths_use_the_generic_path_only():
    assert _checkers("data.0.items", {"style": "none"})[0].typed is None  # a list index
    assert _checkers("$", HITS_TOTAL)[0].typed is None  # a total inside a page that is a list
    assert _checkers("hits", HITS_TOTAL)[0].typed is not None


# ---- what the API said, in the error ------------------------------------------------------------------
CHALLENGE_PAGE = (
    "<!DOCTYPE html>\n<html lang='en'>\n  <head><title>Just a moment...</title></head>\n"
    + "  <body>"
    + "<div class='spinner'></div>" * 200
    + "</body>\n</html>\n"
)


def test_an_html_page_error_names_the_content_type_and_quotes_the_page(replay_server):
    replay_server.add_route("GET", "/h", CHALLENGE_PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
    with pytest.raises(PageValidationError) as info:
        _walk(replay_server, "/h", {"style": "none"}, records_path="items")
    message = str(info.value)
    assert "src/ds: page 1 (http://127.0.0.1:" in message
    assert "is not valid JSON" in message
    assert "content type 'text/html; charset=utf-8'" in message
    assert f"{len(CHALLENGE_PAGE)} bytes" in message
    # One line, whitespace collapsed, cut short: enough to recognise the page, not the whole of it.
    assert "starts: <!DOCTYPE html> <html lang='en'> <head><title>Just a moment...</title></head>" in message
    assert "\n" not in message
    assert message.endswith("…")
    assert len(message) < 400


@pytest.mark.parametrize(
    ("records_path", "expected"),
    [
        ("data.items", "records_path 'data.items' not found in the page"),
        ("error", "records_path 'error' is a str, expected a list"),
    ],
)
def test_a_200_with_a_json_error_body_shows_what_the_api_said(replay_server, records_path, expected):
    replay_server.add_route("GET", "/q", {"error": "daily quota exceeded"})
    with pytest.raises(PageValidationError) as info:
        _walk(replay_server, "/q", {"style": "none"}, records_path=records_path)
    message = str(info.value)
    assert expected in message
    assert "content type 'application/json; charset=utf-8'" in message
    assert message.endswith('body: {"error": "daily quota exceeded"}')  # short bodies are shown whole


def test_a_missing_pagination_total_shows_the_page(replay_server):
    replay_server.add_route("GET", "/t", {"items": [{"id": 1}], "message": "total moved to meta"})
    with pytest.raises(PageValidationError, match=r"total_pages_path 'nbPages' missing.*total moved to meta"):
        _walk(
            replay_server,
            "/t",
            {"style": "page_number", "total_pages_path": "nbPages"},
            records_path="items",
        )


def test_the_quoted_page_masks_the_connections_secret_and_secret_named_values(replay_server):
    key = "k3y-" + "x" * 20
    replay_server.add_route(
        "GET",
        "/s",
        f'{{"error": "invalid api key {key}", "session_token": "tok-123456", "hint": "see docs"}}',
        headers={"Content-Type": "application/json"},
    )
    config = DatasetConfig(path="/s", records_path="items")
    endpoint = ApiEndpoint(
        "src",
        replay_server.url,
        params={"api_key": key},
        secret_params=frozenset({"api_key"}),
        secret_values=frozenset({key}),
    )
    with (
        ApiClient(endpoint, POLICY, sleep=lambda s: None) as client,
        pytest.raises(PageValidationError) as info,
    ):
        list(iter_pages(client, "src", "ds", config))
    message = str(info.value)
    assert key not in message
    assert "tok-123456" not in message
    assert '"error": "invalid api key ***"' in message
    assert '"session_token": ***' in message
    assert '"hint": "see docs"' in message  # the rest stays readable
    assert replay_server.requests[0].query["api_key"] == key  # the key was really sent


def test_describe_body_masks_before_cutting_and_escapes_control_characters():
    from airbricks.ingestion.http import describe_body

    secret = "s" * 30
    body = ("a" * 190 + secret + "b" * 100).encode()  # the secret straddles the 200-character cut
    text = describe_body(body, None, {secret})
    assert "s" * 10 not in text
    assert text == "no content type, 320 bytes, starts: " + "a" * 190 + "***" + "b" * 7 + "…"
    assert describe_body(b"", "application/json") == "content type 'application/json', empty body"
    assert describe_body(b"\x00\x01ok\xff", "application/octet-stream").endswith("body: ??ok\ufffd")
