"""The API replay server over real HTTP: recorded pagination, every fault type, admin API, auth, synthetic."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from airbricks.local.replay import ReplayAdminClient, ReplayConfigError, ReplayServer

pytestmark = pytest.mark.integration

HN = "/api/v1/search_by_date"
GH = "/repos/apache/airflow/issues"
HN_PARAMS = {
    "tags": "story",
    "numericFilters": "created_at_i>=1795046400,created_at_i<1795132800",
    "hitsPerPage": "100",
}


def _raw_get(url: str, path: str) -> tuple[bytes, BaseException | None]:
    """GET over a bare socket; returns every byte received and the error that ended the read, if any."""
    host, port = url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as exc:
            return received, exc
    return received, None


# ---- recorded fixtures -------------------------------------------------------------------------------
def test_hackernews_pages_replay_for_any_interval(replay_server: ReplayServer) -> None:
    pages = []
    for page in range(3):
        params = {**HN_PARAMS, "numericFilters": f"created_at_i>={page},created_at_i<99", "page": page}
        response = requests.get(replay_server.url + HN, params=params, timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        pages.append(response.json())
    assert [p["page"] for p in pages] == [0, 1, 2]
    assert {p["nbPages"] for p in pages} == {3}
    hits = [hit for p in pages for hit in p["hits"]]
    assert len(hits) == pages[0]["nbHits"] == 13
    assert len({hit["objectID"] for hit in hits}) == 13
    for hit in hits:
        assert {
            "objectID",
            "title",
            "url",
            "author",
            "points",
            "num_comments",
            "created_at",
            "created_at_i",
        } <= set(hit)
        assert 1795046400 <= hit["created_at_i"] < 1795132800  # 2026-11-19 UTC
        assert "example.invalid" in hit["url"]


def test_hackernews_page_past_the_end_is_a_clear_404(replay_server: ReplayServer) -> None:
    response = requests.get(replay_server.url + HN, params={**HN_PARAMS, "page": 7}, timeout=5)
    assert response.status_code == 404
    body = response.json()
    assert "no recorded exchange" in body["message"]
    assert body["query"]["page"] == "7"
    assert any("'page': '0'" in route for route in body["recorded"])


def test_github_pagination_follows_link_headers_built_from_the_request(replay_server: ReplayServer) -> None:
    params = {"state": "all", "since": "2026-11-19T00:00:00Z", "per_page": "50"}
    first = requests.get(replay_server.url + GH, params=params, timeout=5)
    assert first.status_code == 200
    assert isinstance(first.json(), list)
    assert len(first.json()) == 5
    next_url = first.links["next"]["url"]
    assert next_url.startswith(replay_server.url + GH + "?")
    assert "since=2026-11-19T00%3A00%3A00Z" in next_url
    assert "per_page=50" in next_url
    assert next_url.endswith("page=2")
    assert first.links["last"]["url"] == next_url
    second = requests.get(next_url, timeout=5)
    assert second.status_code == 200
    assert "next" not in second.links
    assert second.links["prev"]["url"].endswith("page=1")
    issues = first.json() + second.json()
    assert len({issue["id"] for issue in issues}) == 8
    assert any("pull_request" in issue for issue in issues)
    assert all({"id", "number", "title", "state", "user", "labels", "updated_at"} <= set(i) for i in issues)


def test_github_absent_page_means_page_one(replay_server: ReplayServer) -> None:
    without = requests.get(replay_server.url + GH, params={"state": "all"}, timeout=5).json()
    explicit = requests.get(replay_server.url + GH, params={"state": "all", "page": "1"}, timeout=5).json()
    assert without == explicit


def test_requests_are_recorded_with_method_path_query_headers(replay_server: ReplayServer) -> None:
    requests.get(
        replay_server.url + HN, params={**HN_PARAMS, "page": 1}, headers={"X-Probe": "yes"}, timeout=5
    )
    requests.get(replay_server.url + "/_replay/health", timeout=5)  # admin calls are not recorded
    (recorded,) = replay_server.requests
    assert recorded.method == "GET"
    assert recorded.path == HN
    assert recorded.query["page"] == "1"
    assert recorded.query["numericFilters"] == HN_PARAMS["numericFilters"]
    assert recorded.headers["x-probe"] == "yes"


# ---- auth -----------------------------------------------------------------------------------------------
def test_github_requires_the_bearer_token_only_when_one_is_set(replay_server: ReplayServer) -> None:
    assert requests.get(replay_server.url + GH, timeout=5).status_code == 200
    token = secrets.token_hex(16)
    replay_server.set_token("github", token)
    assert requests.get(replay_server.url + GH, timeout=5).status_code == 401
    wrong = requests.get(replay_server.url + GH, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Bad credentials"
    ok = requests.get(replay_server.url + GH, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert ok.status_code == 200
    # The other source stays open.
    assert requests.get(replay_server.url + HN, params={"page": 0}, timeout=5).status_code == 200


def test_token_given_at_construction_survives_reset() -> None:
    token = secrets.token_hex(16)
    with ReplayServer(tokens={"github": token}) as server:
        server.reset()
        assert requests.get(server.url + GH, timeout=5).status_code == 401
        assert server.token_for("github") == token


# ---- faults ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500, 503])
def test_status_fault_applies_to_the_next_n_matching_requests(
    replay_server: ReplayServer, status: int
) -> None:
    replay_server.inject(HN, status=status, times=2, retry_after=3 if status == 429 else None)
    url = replay_server.url + HN
    statuses = [requests.get(url, params={"page": 0}, timeout=5) for _ in range(3)]
    assert [r.status_code for r in statuses] == [status, status, 200]
    if status == 429:
        assert statuses[0].headers["Retry-After"] == "3"
    else:
        assert "Retry-After" not in statuses[0].headers
    assert replay_server.faults == []


def test_fault_is_scoped_to_its_path_prefix(replay_server: ReplayServer) -> None:
    replay_server.inject("/repos/", status=503)
    assert requests.get(replay_server.url + HN, params={"page": 0}, timeout=5).status_code == 200
    assert requests.get(replay_server.url + GH, timeout=5).status_code == 503
    assert requests.get(replay_server.url + GH, timeout=5).status_code == 200


def test_truncated_json_body_fault(replay_server: ReplayServer) -> None:
    replay_server.inject(HN, body='{"hits": [{"objectID": "1", "ti')
    response = requests.get(replay_server.url + HN, params={"page": 0}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    replay_server.inject(HN, body="<html>maintenance</html>", headers={"Content-Type": "text/html"})
    response = requests.get(replay_server.url + HN, params={"page": 0}, timeout=5)
    assert response.headers["Content-Type"] == "text/html"


def test_schema_drift_body_fault(replay_server: ReplayServer) -> None:
    replay_server.inject(HN, body={"results": [{"id": 1}], "page": 0})
    response = requests.get(replay_server.url + HN, params={"page": 0}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert "hits" not in response.json()


@pytest.mark.parametrize("mode", ["before", "headers", True])
def test_connection_reset_before_a_complete_response(replay_server: ReplayServer, mode: object) -> None:
    replay_server.inject(HN, reset_connection=mode)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(replay_server.url + HN, params={"page": 0}, timeout=5)
    # The fault is used up: the next request is answered normally.
    assert requests.get(replay_server.url + HN, params={"page": 0}, timeout=5).status_code == 200


def test_connection_reset_mid_headers_sends_a_partial_head(replay_server: ReplayServer) -> None:
    replay_server.inject(HN, reset_connection="headers")
    received, error = _raw_get(replay_server.url, f"{HN}?page=0")
    assert received.startswith(b"HTTP/1.1 200")
    assert b"\r\n\r\n" not in received
    assert isinstance(error, ConnectionResetError)


def test_connection_reset_mid_body_truncates_the_announced_body(replay_server: ReplayServer) -> None:
    replay_server.inject(HN, reset_connection="body")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(replay_server.url + HN, params={"page": 0}, timeout=5)
    replay_server.inject(HN, reset_connection="body")
    received, error = _raw_get(replay_server.url, f"{HN}?page=0")
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split()[1]
    )
    assert 0 < len(body) < length
    assert isinstance(error, ConnectionResetError)


def test_delay_fault_causes_a_read_timeout(replay_server: ReplayServer) -> None:
    replay_server.inject(HN, delay=5)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(replay_server.url + HN, params={"page": 0}, timeout=(2, 0.3))
    assert time.monotonic() - started < 4.5  # the client gave up; it did not wait for the delayed answer
    assert requests.get(replay_server.url + HN, params={"page": 0}, timeout=5).status_code == 200


def test_invalid_faults_are_rejected_with_the_field_named(replay_server: ReplayServer) -> None:
    with pytest.raises(ReplayConfigError, match="times"):
        replay_server.inject(HN, status=500, times=0)
    with pytest.raises(ReplayConfigError, match="reset_connection"):
        replay_server.inject(HN, reset_connection="sometimes")
    with pytest.raises(ReplayConfigError, match="path_prefix"):
        replay_server.inject("api", status=500)
    with pytest.raises(ReplayConfigError, match="at least one"):
        replay_server.inject(HN)


# ---- admin API (what other processes use) ---------------------------------------------------------------
def test_admin_api_inject_list_requests_and_reset(replay_server: ReplayServer) -> None:
    admin = ReplayAdminClient(replay_server.url)
    assert admin.health()["sources"] == ["github", "hackernews"]
    fault = admin.inject(HN, status=429, retry_after=1)
    assert fault["id"] > 0
    assert [f["path_prefix"] for f in admin.faults()] == [HN]
    response = requests.get(replay_server.url + HN, params={"page": 0}, timeout=5)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert [(r["path"], r["query"]["page"]) for r in admin.requests()] == [(HN, "0")]
    admin.inject(HN, status=500)
    admin.reset()
    assert admin.requests() == []
    assert admin.faults() == []
    assert requests.get(replay_server.url + HN, params={"page": 0}, timeout=5).status_code == 200


def test_admin_api_rejects_unknown_fault_fields(replay_server: ReplayServer) -> None:
    response = requests.post(
        replay_server.url + "/_replay/faults", json={"path_prefix": HN, "status": 503, "stauts": 1}, timeout=5
    )
    assert response.status_code == 400
    assert "stauts" in response.json()["message"]
    response = requests.post(replay_server.url + "/_replay/faults", data="{not json", timeout=5)
    assert response.status_code == 400


def test_admin_api_sets_tokens_and_adds_routes(replay_server: ReplayServer) -> None:
    admin = ReplayAdminClient(replay_server.url)
    token = secrets.token_hex(8)
    admin.set_token("github", token)
    assert requests.get(replay_server.url + GH, timeout=5).status_code == 401
    requests.post(
        replay_server.url + "/_replay/routes",
        json={"method": "GET", "path": "/custom", "body": {"ok": True}, "status": 202},
        timeout=5,
    ).raise_for_status()
    response = requests.get(replay_server.url + "/custom", timeout=5)
    assert (response.status_code, response.json()) == (202, {"ok": True})


# ---- routes, fixtures, synthetic ------------------------------------------------------------------------
def test_added_route_wins_and_matches_on_its_params(replay_server: ReplayServer) -> None:
    replay_server.add_route("GET", HN, {"hits": [], "page": 1, "nbPages": 3}, match={"page": "1"})
    assert requests.get(replay_server.url + HN, params={"page": 1}, timeout=5).json()["hits"] == []
    assert len(requests.get(replay_server.url + HN, params={"page": 0}, timeout=5).json()["hits"]) == 5


def test_load_fixtures_from_a_directory(replay_server: ReplayServer, tmp_path: Path) -> None:
    source = tmp_path / "weather"
    source.mkdir()
    (source / "today.json").write_text('{"temperature": 21}')
    (source / "source.json").write_text(
        json.dumps(
            {
                "source": "weather",
                "path_prefix": "/v1/",
                "exchanges": [
                    {
                        "path": "/v1/today",
                        "headers": {"Content-Type": "application/json"},
                        "body_file": "today.json",
                    }
                ],
            }
        )
    )
    assert replay_server.load_fixtures(tmp_path) == ["weather"]
    assert requests.get(replay_server.url + "/v1/today", timeout=5).json() == {"temperature": 21}


def test_bad_fixture_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ReplayConfigError, match="does not exist"):
        ReplayServer([tmp_path / "missing"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "source.json").write_text("{")
    with pytest.raises(ReplayConfigError, match=r"broken/source.json is not valid JSON"):
        ReplayServer([tmp_path / "broken"])
    (tmp_path / "broken" / "source.json").write_text(
        json.dumps({"source": "b", "exchanges": [{"path": "/x", "body_file": "nope.json"}]})
    )
    with pytest.raises(ReplayConfigError, match=r"exchanges\[0\]: body_file .*nope.json does not exist"):
        ReplayServer([tmp_path / "broken"])


def test_synthetic_hackernews_pages_are_deterministic(replay_server: ReplayServer) -> None:
    replay_server.add_synthetic("/bench/hn", pages=4, per_page=50, record_bytes=400)
    url = replay_server.url + "/bench/hn"
    pages = [requests.get(url, params={"page": p}, timeout=5).json() for p in range(5)]
    assert [len(p["hits"]) for p in pages] == [50, 50, 50, 50, 0]
    assert pages[0]["nbPages"] == 4
    ids = [hit["objectID"] for p in pages for hit in p["hits"]]
    assert len(set(ids)) == 200
    sizes = {len(json.dumps(hit, separators=(",", ":"))) for hit in pages[1]["hits"]}
    assert all(395 <= size <= 420 for size in sizes), sizes
    again = requests.get(url, params={"page": 2, "numericFilters": "ignored"}, timeout=5).json()["hits"]
    assert again == pages[2]["hits"]


def test_synthetic_github_pages_use_link_headers(replay_server: ReplayServer) -> None:
    replay_server.add_synthetic("/bench/gh", pages=3, per_page=10, style="github")
    url: str | None = replay_server.url + "/bench/gh?per_page=10"
    seen = []
    while url:
        response = requests.get(url, timeout=5)
        seen.extend(issue["id"] for issue in response.json())
        url = response.links.get("next", {}).get("url")
    assert len(seen) == len(set(seen)) == 30


# ---- console script ---------------------------------------------------------------------------------------
def test_console_script_serves_fixtures_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airbricks.local.replay_cli", "--synthetic", "/s:github:pages=2,per_page=3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert "listening on" in line, line
        url = line.split("listening on ")[1].split()[0]
        assert requests.get(url + HN, params={"page": 2}, timeout=5).json()["page"] == 2
        assert len(requests.get(url + "/s", timeout=5).json()) == 3
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_console_script_reports_an_unset_token_variable() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airbricks.local.replay_cli",
            "--token-from-env",
            "github=AIRBRICKS_TEST_UNSET_VAR",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "AIRBRICKS_TEST_UNSET_VAR" in result.stderr
