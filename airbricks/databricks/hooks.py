"""``AirbricksDatabricksHook``: the provider's ``DatabricksHook`` plus Retry-After and a generic REST call.

Everything the provider already does (connection parsing, PAT / OAuth M2M / workload identity auth, retries,
run-now, runs/get, ...) is inherited unchanged. Added here:

* the retry wait honours ``Retry-After`` on 429/503 (see :mod:`airbricks.databricks.retry`);
* :meth:`AirbricksDatabricksHook.call` / :meth:`a_call`: any method (incl. ``HEAD``/``PUT``), query string and
  JSON body together, and a status that is "expected" (e.g. 404 for an absent file) instead of an error,
  which ``_do_api_call`` cannot express;
* small typed helpers for the all-purpose cluster lifecycle and file status (Volumes / DBFS).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, NamedTuple, TypedDict, Unpack
from urllib.parse import quote

import requests
from airflow.providers.databricks.exceptions import DatabricksApiError
from airflow.providers.databricks.hooks.databricks import DatabricksHook
from airflow.sdk.exceptions import AirflowException
from requests import exceptions as requests_exceptions
from tenacity import RetryError

from airbricks.databricks.retry import default_wait, wait_retry_after

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
AUTH_STATUSES = frozenset({401, 403})

CREATE_CLUSTER_ENDPOINT = ("POST", "2.1/clusters/create")
GET_CLUSTER_ENDPOINT = ("GET", "2.1/clusters/get")
DELETE_CLUSTER_ENDPOINT = ("POST", "2.1/clusters/delete")
PERMANENT_DELETE_CLUSTER_ENDPOINT = ("POST", "2.1/clusters/permanent-delete")
DBFS_GET_STATUS_ENDPOINT = ("GET", "2.0/dbfs/get-status")

# The one place the connection and retry defaults of every airbricks operator, sensor and trigger live.
DEFAULT_CONN_ID = DatabricksHook.default_conn_name
DEFAULT_RETRY_LIMIT = 3
DEFAULT_RETRY_DELAY = 1.0


def normalise_endpoint(endpoint: str) -> str:
    """``/api/2.1/clusters/get`` or ``2.1/clusters/get`` -> ``2.1/clusters/get`` (the hook adds ``api/``)."""
    endpoint = endpoint.strip().lstrip("/")
    if endpoint.startswith("api/"):
        endpoint = endpoint[len("api/") :]
    if not endpoint:
        raise ValueError("Databricks endpoint is empty")
    return endpoint


def _error_detail(status: int, text: str) -> str:
    """``ERROR_CODE: message`` from a Databricks error body, or the (truncated) body itself."""
    try:
        payload = json.loads(text) if text else {}
    except ValueError:
        payload = {}
    if isinstance(payload, dict) and (payload.get("error_code") or payload.get("message")):
        return f"{payload.get('error_code', status)}: {payload.get('message', '')}".strip()
    return text[:500] or f"HTTP {status}"


class CallOptions(TypedDict, total=False):
    """Keyword arguments of :meth:`AirbricksDatabricksHook.call` and :meth:`~AirbricksDatabricksHook.a_call`.

    :param query: query-string parameters.
    :param body: JSON body (not sent when ``None``).
    :param ok_statuses: non-2xx statuses returned to the caller instead of raised (e.g. ``{404}``).
    """

    query: dict[str, Any] | None
    body: Any
    ok_statuses: frozenset[int] | set[int]


class _Call(NamedTuple):
    """One validated REST call: upper-case method, endpoint after ``/api/``, and its options."""

    method: str
    endpoint: str
    query: dict[str, Any]
    body: Any
    ok_statuses: frozenset[int]

    @classmethod
    def of(cls, method: str, endpoint: str, options: CallOptions) -> _Call:
        unknown = sorted(set(options) - set(CallOptions.__annotations__))
        if unknown:  # a TypedDict is not checked at run time: a misspelt option would be dropped
            raise TypeError(
                f"unexpected keyword argument(s) {unknown}: the options are query, body, ok_statuses"
            )
        method = method.upper()
        if method not in HTTP_METHODS:
            raise ValueError(f"HTTP method {method!r} is not one of {sorted(HTTP_METHODS)}")
        return cls(
            method,
            normalise_endpoint(endpoint),
            dict(options.get("query") or {}),
            options.get("body"),
            frozenset(options.get("ok_statuses") or ()),
        )


#: Idle seconds a trigger's session keeps its connection: above any polling period of the airbricks
#: triggers, below the idle timeout of the workspace's front end (the emulator's is 75 s, as nginx's default),
#: so that the client, not the server, closes an idle connection and a poll never races a server-side close.
ASYNC_KEEPALIVE_SECONDS = 60.0


class AirbricksDatabricksHook(DatabricksHook):
    """Databricks hook whose retries honour ``Retry-After`` and that can make any REST call.

    Same constructor as :class:`~airflow.providers.databricks.hooks.databricks.DatabricksHook` plus:

    :param max_retry_after: cap in seconds on a server-requested ``Retry-After`` delay.
    """

    hook_name = "Databricks (airbricks)"

    def __init__(
        self,
        databricks_conn_id: str = DEFAULT_CONN_ID,
        timeout_seconds: int = 180,
        retry_limit: int = DEFAULT_RETRY_LIMIT,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        retry_args: dict[Any, Any] | None = None,
        caller: str = "AirbricksDatabricksHook",
        max_retry_after: float = 300.0,
    ) -> None:
        super().__init__(databricks_conn_id, timeout_seconds, retry_limit, retry_delay, retry_args, caller)
        # The provider builds self.retry_args once in __init__ and every sync/async call path creates its
        # tenacity Retrying from it, so replacing the wait here covers _do_api_call, _a_do_api_call and
        # the OAuth token requests alike.
        if retry_args and "wait" in retry_args:
            self.retry_args["wait"] = wait_retry_after(retry_args["wait"], max_wait=max_retry_after)
        else:
            self.retry_args["wait"] = default_wait(retry_delay, retry_limit, max_retry_after)

    async def __aenter__(self) -> AirbricksDatabricksHook:
        """The session a trigger polls through (``async with hook``), keeping its connection between polls.

        aiohttp closes an idle connection after 15 s by default, which is the processing DAGs' polling
        period: every poll of every deferred run would connect again and resolve the host in a thread.
        """
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=ASYNC_KEEPALIVE_SECONDS)
        )
        return self

    # ---- the provider's call paths, with a clear auth error --------------------------------------------

    def _auth_error(self, err: DatabricksApiError, endpoint_info: tuple[str, str]) -> DatabricksApiError:
        method, endpoint = endpoint_info
        return DatabricksApiError(
            f"Databricks rejected the credentials of connection {self.databricks_conn_id!r} "
            f"(HTTP {err.http_status_code} on {method} {endpoint}; {err}). Check the token or the service "
            "principal's client id/secret and its workspace permissions.",
            http_status_code=err.http_status_code,
        )

    def _do_api_call(self, endpoint_info: tuple[str, str], json: dict[str, Any] | None = None, **kwargs: Any):
        try:
            return super()._do_api_call(endpoint_info, json, **kwargs)
        except DatabricksApiError as err:
            if err.http_status_code in AUTH_STATUSES:
                raise self._auth_error(err, endpoint_info) from err
            raise

    async def _a_do_api_call(self, endpoint_info: tuple[str, str], json: dict[str, Any] | None = None):
        try:
            return await super()._a_do_api_call(endpoint_info, json)
        except DatabricksApiError as err:
            if err.http_status_code in AUTH_STATUSES:
                raise self._auth_error(err, endpoint_info) from err
            raise

    # ---- generic REST -------------------------------------------------------------------------------

    def _raise_api_error(self, method: str, endpoint: str, status: int, text: str) -> None:
        detail = _error_detail(status, text)
        if status in AUTH_STATUSES:
            # Never echo credentials: only the connection id and what the workspace said.
            message = (
                f"Databricks rejected the credentials of connection {self.databricks_conn_id!r} "
                f"(HTTP {status} on {method} {endpoint}: {detail}). Check the token or the service "
                "principal's client id/secret and its workspace permissions."
            )
        else:
            message = f"Databricks API {method} {endpoint} failed with HTTP {status}: {detail}"
        raise DatabricksApiError(message, http_status_code=status)

    def _gave_up(self, request: _Call, err: RetryError) -> AirflowException:
        return AirflowException(
            f"Databricks API {request.method} {request.endpoint} failed {self.retry_limit} times, giving up "
            f"(last error: {err.last_attempt.exception()})"
        )

    def call(self, method: str, endpoint: str, **options: Unpack[CallOptions]) -> requests.Response:
        """Call any Databricks REST endpoint with the connection's auth and Retry-After aware retries.

        :param method: HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE).
        :param endpoint: path after ``/api/``, e.g. ``2.1/clusters/get`` (a leading ``/api/`` is accepted).
        :param options: ``query``, ``body`` and ``ok_statuses``, see :class:`CallOptions`.
        :return: the ``requests`` response.
        """
        request = _Call.of(method, endpoint, options)
        url = self._endpoint_url(f"api/{request.endpoint}")
        headers = {**self.user_agent_header, **self._get_aad_headers()}
        auth = None
        token = self._get_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        else:
            auth = requests.auth.HTTPBasicAuth(
                self._get_connection_attr("login"), self.databricks_conn.password
            )
        try:
            for attempt in self._get_retry_object():
                with attempt:
                    response = requests.request(
                        request.method,
                        url,
                        params=request.query or None,
                        json=request.body,
                        auth=auth,
                        headers=headers,
                        timeout=self.timeout_seconds,
                        **self._get_requests_kwargs(),
                    )
                    if response.status_code not in request.ok_statuses:
                        response.raise_for_status()
                    return response
        except RetryError as err:
            raise self._gave_up(request, err) from err
        except requests_exceptions.HTTPError as err:
            self._raise_api_error(
                request.method, request.endpoint, err.response.status_code, err.response.text
            )
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def call_json(self, method: str, endpoint: str, **options: Unpack[CallOptions]) -> Any:
        """:meth:`call` and decode the JSON body (``{}`` for an empty body)."""
        response = self.call(method, endpoint, **options)
        return response.json() if response.content else {}

    async def a_call(
        self, method: str, endpoint: str, **options: Unpack[CallOptions]
    ) -> tuple[int, dict[str, str], Any]:
        """Async :meth:`call` for triggers: returns ``(status, headers, decoded JSON body or None)``."""
        import aiohttp

        request = _Call.of(method, endpoint, options)
        await self._a_cache_databricks_conn()
        url = self._endpoint_url(f"api/{request.endpoint}")
        async with aiohttp.ClientSession() as session:
            self._session = session  # the provider's token/AAD helpers use self._session
            try:
                headers = {**self.user_agent_header, **(await self._a_get_aad_headers())}
                token = await self._a_get_token()
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                else:
                    basic = aiohttp.BasicAuth(
                        self._get_connection_attr("login"), self.databricks_conn.password
                    )
                    headers["Authorization"] = basic.encode()
                params = {k: str(v) for k, v in request.query.items()}
                try:
                    async for attempt in self._a_get_retry_object():
                        with attempt:
                            async with session.request(
                                request.method,
                                url,
                                params=params or None,
                                json=request.body,
                                headers=headers,
                                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                                **self._get_aiohttp_kwargs(url),
                            ) as response:
                                text = "" if request.method == "HEAD" else await response.text()
                                if response.status >= 400 and response.status not in request.ok_statuses:
                                    # Carry status + headers (Retry-After) so the retry wait can read them.
                                    raise aiohttp.ClientResponseError(
                                        response.request_info,
                                        response.history,
                                        status=response.status,
                                        message=_error_detail(response.status, text),
                                        headers=response.headers,
                                    )
                                payload = json.loads(text) if text and response.status < 400 else None
                                return response.status, dict(response.headers), payload
                except RetryError as err:
                    raise self._gave_up(request, err) from err
                except aiohttp.ClientResponseError as err:
                    self._raise_api_error(request.method, request.endpoint, err.status, err.message)
            finally:
                self._session = None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    # ---- all-purpose clusters ----------------------------------------------------------------------

    def create_cluster(self, spec: dict[str, Any]) -> str:
        """``POST 2.1/clusters/create``; returns the new ``cluster_id``."""
        return self.call_json(*CREATE_CLUSTER_ENDPOINT, body=spec)["cluster_id"]

    @staticmethod
    def _is_missing(response: requests.Response) -> bool:
        # Databricks answers an unknown cluster with 404 RESOURCE_DOES_NOT_EXIST on some clouds and with
        # 400 INVALID_PARAMETER_VALUE "Cluster ... does not exist" on others.
        return response.status_code == 404 or (
            response.status_code == 400 and "does not exist" in response.text.lower()
        )

    def _cluster_call(self, endpoint: tuple[str, str], cluster_id: str) -> requests.Response | None:
        method, path = endpoint
        kwargs: dict[str, Any] = (
            {"query": {"cluster_id": cluster_id}} if method == "GET" else {"body": {"cluster_id": cluster_id}}
        )
        response = self.call(method, path, ok_statuses={400, 404}, **kwargs)
        if self._is_missing(response):
            return None
        if response.status_code >= 400:
            self._raise_api_error(method, path, response.status_code, response.text)
        return response

    def get_cluster(self, cluster_id: str) -> dict[str, Any] | None:
        """``GET 2.1/clusters/get``; ``None`` when the cluster does not exist (any more)."""
        response = self._cluster_call(GET_CLUSTER_ENDPOINT, cluster_id)
        return response.json() if response is not None else None

    def terminate_cluster_by_id(self, cluster_id: str) -> bool:
        """``POST 2.1/clusters/delete`` (terminate; config kept). ``False`` if the cluster is already gone."""
        return self._cluster_call(DELETE_CLUSTER_ENDPOINT, cluster_id) is not None

    def permanent_delete_cluster(self, cluster_id: str) -> bool:
        """``POST 2.1/clusters/permanent-delete``. ``False`` if the cluster is already gone."""
        return self._cluster_call(PERMANENT_DELETE_CLUSTER_ENDPOINT, cluster_id) is not None

    # ---- files --------------------------------------------------------------------------------------

    @staticmethod
    def file_status_request(path: str) -> tuple[str, str, dict[str, str] | None]:
        """``(method, endpoint, query)`` that checks whether ``path`` exists.

        ``/Volumes/...`` uses the Files API (``HEAD 2.0/fs/files/...``, or ``2.0/fs/directories/...`` when
        the path ends with ``/``); ``dbfs:/...`` and other absolute paths use ``GET 2.0/dbfs/get-status``.
        """
        if path.startswith("/Volumes/"):
            kind = "directories" if path.endswith("/") else "files"
            return "HEAD", f"2.0/fs/{kind}{quote(path.rstrip('/') if kind == 'directories' else path)}", None
        dbfs_path = path[len("dbfs:") :] if path.startswith("dbfs:") else path
        if not dbfs_path.startswith("/"):
            raise ValueError(f"file path {path!r} must be /Volumes/..., dbfs:/... or an absolute DBFS path")
        return DBFS_GET_STATUS_ENDPOINT[0], DBFS_GET_STATUS_ENDPOINT[1], {"path": dbfs_path}

    def file_exists(self, path: str) -> bool:
        """Whether a Volume file/directory or DBFS path exists (404 -> ``False``, other errors raise)."""
        method, endpoint, query = self.file_status_request(path)
        return self.call(method, endpoint, query=query, ok_statuses={404}).status_code != 404

    async def a_file_exists(self, path: str) -> bool:
        """Async :meth:`file_exists`."""
        method, endpoint, query = self.file_status_request(path)
        status, _, _ = await self.a_call(method, endpoint, query=query, ok_statuses={404})
        return status != 404


class DatabricksHookMixin:
    """The one owner of an :class:`AirbricksDatabricksHook` for airbricks operators, sensors and triggers.

    ``self._hook`` is built on first use (at execute time, or in the triggerer), never at DAG parse time,
    from the attributes the provider's Databricks operators use: ``databricks_conn_id``,
    ``databricks_retry_limit``, ``databricks_retry_delay`` and ``databricks_retry_args``. Placed before a
    provider operator in the bases, it replaces that operator's ``_hook``/``_get_hook`` too, so every call
    the provider makes goes through the Retry-After aware hook.
    """

    databricks_conn_id: str
    databricks_retry_limit: int
    databricks_retry_delay: float
    databricks_retry_args: dict[Any, Any] | None

    def _get_hook(self, caller: str | None = None) -> AirbricksDatabricksHook:
        return AirbricksDatabricksHook(
            self.databricks_conn_id,
            retry_limit=self.databricks_retry_limit,
            retry_delay=self.databricks_retry_delay,
            retry_args=self.databricks_retry_args,
            caller=caller or type(self).__name__,
        )

    @cached_property
    def _hook(self) -> AirbricksDatabricksHook:
        return self._get_hook()
