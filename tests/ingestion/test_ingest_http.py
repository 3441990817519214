"""HTTP client: auth from connections, retry policy, Retry-After, error messages, over real HTTP."""

from __future__ import annotations

import datetime
import email.utils
import secrets
import socket
from types import SimpleNamespace

import pytest

from airbricks.ingestion.config import HttpPolicy
from airbricks.ingestion.http import (
    ApiClient,
    ApiEndpoint,
    ApiRequestError,
    BackoffPolicy,
    endpoint_from_connection,
    mask_url,
    parse_retry_after,
)

HN = "/api/v1/search_by_date"
FAST = HttpPolicy(
    max_attempts=4,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.02,
    connect_timeout_seconds=2,
    read_timeout_seconds=2,
)


class Sleeps(list):
    """Records requested waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _conn(**fields):
    base = {
        "conn_id": "http_test",
        "host": "127.0.0.1",
        "schema": "http",
        "port": None,
        "login": None,
        "password": None,
        "extra_dejson": {},
    }
    return SimpleNamespace(**{**base, **fields})


def _client(replay, policy=FAST, auth="none", password=None, extra=None, sleep=None):
    conn = _conn(port=replay.port, password=password, extra_dejson=extra or {})
    endpoint = endpoint_from_connection("hn", auth, conn)
    return ApiClient(endpoint, policy, sleep=sleep if sleep is not None else Sleeps())


# ---- pure functions ------------------------------------------------------------------------------
def test_parse_retry_after_seconds_and_http_date():
    now = datetime.datetime(2026, 11, 21, 12, 0, 0, tzinfo=datetime.UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    later = email.utils.format_datetime(now + datetime.timedelta(seconds=45), usegmt=True)
    assert parse_retry_after(later, now=now) == 45.0
    earlier = email.utils.format_datetime(now - datetime.timedelta(seconds=45), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_exponential_full_jitter_and_capped(monkeypatch):
    monkeypatch.delenv("AIRBRICKS_INGEST_MAX_WAIT_SECONDS", raising=False)
    top = BackoffPolicy(initial=1, maximum=10, retry_after_max=30, rng=lambda: 1.0)
    assert [top.wait(n, None) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 10, 10]
    bottom = BackoffPolicy(initial=1, maximum=10, retry_after_max=30, rng=lambda: 0.0)
    assert bottom.wait(3, None) == 0
    retry_after = SimpleNamespace(retry_after=120.0)
    assert top.wait(1, retry_after) == 30  # server asked for 120 s, capped at retry_after_max
    monkeypatch.setenv("AIRBRICKS_INGEST_MAX_WAIT_SECONDS", "0.5")
    capped = BackoffPolicy(initial=1, maximum=10, retry_after_max=30, rng=lambda: 1.0)
    assert capped.wait(4, None) == 0.5
    assert capped.wait(1, retry_after) == 0.5


def test_mask_url_hides_secret_params_and_userinfo():
    url = "https://user:pw@api.example.com:8443/v1/items?api_key=s3cr3t&page=2"
    assert mask_url(url, {"api_key"}) == "https://api.example.com:8443/v1/items?api_key=***&page=2"


def test_endpoint_from_connection_per_auth_style():
    token = secrets.token_hex(8)
    assert endpoint_from_connection("s", "none", _conn(schema=None, host="api.example.com")).base_url == (
        "https://api.example.com"
    )
    ep = endpoint_from_connection(
        "s", "bearer", _conn(host="http://10.0.0.1/base/", port=8080, password=token)
    )
    assert ep.base_url == "http://10.0.0.1:8080/base"
    assert ep.headers["Authorization"] == f"Bearer {token}"
    assert token not in repr(ep)
    ep = endpoint_from_connection(
        "s", "api_key_header", _conn(password=token, extra_dejson={"api_key_header": "X-K"})
    )
    assert ep.headers == {"X-K": token}
    ep = endpoint_from_connection(
        "s", "api_key_query", _conn(password=token, extra_dejson={"api_key_param": "key"})
    )
    assert ep.params == {"key": token}
    assert ep.secret_params == {"key"}
    ep = endpoint_from_connection("s", "basic", _conn(login="u", password=token))
    assert ep.basic_auth == ("u", token)
    with pytest.raises(ValueError, match="password field of connection 'http_test'"):
        endpoint_from_connection("s", "bearer", _conn())
    with pytest.raises(ValueError, match="has no host"):
        endpoint_from_connection("s", "none", _conn(host=""))


# ---- against the replay server --------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.integration
def test_429_honours_retry_after_seconds_then_succeeds(replay_server):
    replay_server.inject(HN, status=429, retry_after=7)
    sleeps = Sleeps()
    with _client(replay_server, sleep=sleeps) as client:
        response = client.get(client.build_url(replay_server.url + HN))
    assert response.status == 200
    assert response.attempts == 2
    assert sleeps == [7.0]
    assert len(replay_server.requests) == 2


@pytest.mark.integration
def test_429_retry_after_http_date_is_capped(replay_server):
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    replay_server.inject(HN, status=429, retry_after=email.utils.format_datetime(when, usegmt=True))
    sleeps = Sleeps()
    policy = FAST.model_copy(update={"retry_after_max_seconds": 5})
    with _client(replay_server, policy=policy, sleep=sleeps) as client:
        client.get(client.build_url(replay_server.url + HN))
    assert sleeps == [5]


@pytest.mark.integration
def test_retry_after_http_date_in_the_near_future(replay_server):
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    replay_server.inject(HN, status=429, retry_after=email.utils.format_datetime(when, usegmt=True))
    sleeps = Sleeps()
    with _client(replay_server, sleep=sleeps) as client:
        client.get(client.build_url(replay_server.url + HN))
    assert len(sleeps) == 1
    assert 27 <= sleeps[0] <= 30


@pytest.mark.faults
@pytest.mark.integration
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retried_with_bounded_backoff(replay_server, status):
    replay_server.inject(HN, status=status, times=2)
    sleeps = Sleeps()
    with _client(replay_server, sleep=sleeps) as client:
        response = client.get(client.build_url(replay_server.url + HN))
    assert response.attempts == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.01
    assert 0 <= sleeps[1] <= 0.02


@pytest.mark.faults
@pytest.mark.integration
@pytest.mark.parametrize("where", ["before", "headers", "body"])
def test_connection_reset_is_retried(replay_server, where):
    replay_server.inject(HN, reset_connection=where)
    with _client(replay_server) as client:
        response = client.get(client.build_url(replay_server.url + HN))
    assert response.attempts == 2
    assert response.body.startswith(b"{")


@pytest.mark.faults
@pytest.mark.integration
def test_read_timeout_is_retried(replay_server):
    replay_server.inject(HN, delay=4)
    policy = FAST.model_copy(update={"read_timeout_seconds": 1})
    with _client(replay_server, policy=policy) as client:
        response = client.get(client.build_url(replay_server.url + HN))
    assert response.attempts == 2


@pytest.mark.faults
@pytest.mark.integration
def test_exhausted_attempts_name_source_url_and_status_without_secrets(replay_server):
    key = secrets.token_hex(12)
    replay_server.inject(HN, status=503, times=10)
    with (
        _client(replay_server, auth="api_key_query", password=key, extra={"api_key_param": "key"}) as client,
        pytest.raises(ApiRequestError) as info,
    ):
        client.get(client.build_url(replay_server.url + HN, {"page": "3"}))
    message = str(info.value)
    assert message.startswith("hn: GET http://127.0.0.1:")
    assert "page=3" in message
    assert "key=***" in message
    assert "failed after 4 attempts: HTTP 503 Service Unavailable" in message
    assert key not in message
    assert info.value.status == 503
    assert len(replay_server.requests) == 4
    assert replay_server.requests[0].query["key"] == key  # the key was really sent


@pytest.mark.integration
@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retried(replay_server, status):
    replay_server.inject(HN, status=status)
    with (
        _client(replay_server) as client,
        pytest.raises(ApiRequestError, match=f"HTTP {status}.*not retryable"),
    ):
        client.get(client.build_url(replay_server.url + HN))
    assert len(replay_server.requests) == 1


def test_connection_refused_is_retried_and_reported_without_the_key():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = secrets.token_hex(12)
    endpoint = ApiEndpoint(
        "s", f"http://127.0.0.1:{port}", params={"api_key": key}, secret_params=frozenset({"api_key"})
    )
    sleeps = Sleeps()
    with ApiClient(endpoint, FAST, sleep=sleeps) as client, pytest.raises(ApiRequestError) as info:
        client.get(client.build_url(endpoint.url_for("/x")))
    assert len(sleeps) == FAST.max_attempts - 1
    assert "ConnectionError" in str(info.value)
    assert key not in str(info.value)


@pytest.mark.integration
def test_bearer_token_and_dataset_headers_are_sent(replay_server):
    token = secrets.token_urlsafe(16)
    replay_server.set_token("github", token)
    with _client(replay_server, auth="bearer", password=token) as client:
        client.get(
            client.build_url(replay_server.url + "/repos/apache/airflow/issues"), headers={"Accept": "x/y"}
        )
    (request,) = replay_server.requests
    assert request.headers["authorization"] == f"Bearer {token}"
    assert request.headers["accept"] == "x/y"


@pytest.mark.integration
def test_oversized_page_is_refused(replay_server):
    policy = FAST.model_copy(update={"max_page_bytes": 100})
    with (
        _client(replay_server, policy=policy) as client,
        pytest.raises(ApiRequestError, match="max_page_bytes=100"),
    ):
        client.get(client.build_url(replay_server.url + HN))


@pytest.mark.integration
def test_a_client_error_quotes_what_the_api_said_without_the_token(replay_server):
    token = secrets.token_urlsafe(16)
    replay_server.add_route(
        "GET",
        HN,
        {"message": f"Bad credentials for {token}", "documentation_url": "https://docs"},
        status=401,
    )
    with (
        _client(replay_server, auth="bearer", password=token) as client,
        pytest.raises(ApiRequestError) as info,
    ):
        client.get(client.build_url(replay_server.url + HN))
    message = str(info.value)
    assert "HTTP 401" in message
    assert "not retryable; content type 'application/json; charset=utf-8'" in message
    assert '"message": "Bad credentials for ***"' in message
    assert token not in message


@pytest.mark.faults
@pytest.mark.integration
def test_exhausted_attempts_quote_the_last_error_body(replay_server):
    replay_server.add_route("GET", HN, {"error": "daily quota exceeded"}, status=429)
    with _client(replay_server) as client, pytest.raises(ApiRequestError) as info:
        client.get(client.build_url(replay_server.url + HN))
    message = str(info.value)
    assert "failed after 4 attempts: HTTP 429" in message
    assert message.endswith(
        "(content type 'application/json; charset=utf-8', 33 bytes, "
        'body: {"error": "daily quota exceeded"})'
    )
