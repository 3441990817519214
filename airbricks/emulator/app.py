"""The HTTP layer: Starlette routes, bearer-token auth, fault hooks and Databricks' error shapes.

Starlette (already pinned for Airflow's API server) is used instead of FastAPI because the emulator must
control every byte of its error bodies, which FastAPI's validation layer would answer in its own shape.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airbricks.emulator.errors import ApiError, as_int, invalid, malformed, not_found

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from airbricks.emulator.server import Workspace

log = logging.getLogger(__name__)
#: One INFO line per request (``airbricks-emulator`` prints them); see :class:`AccessLog`.
access_log = logging.getLogger("airbricks.emulator.access")

_API = re.compile(r"^/api/(\d+\.\d+)/(.+?)/?$")
WORKSPACE_ID = "1234567890"
Handler = Callable[["Workspace", dict[str, Any], Request, bytes], Any]


def _bool(value: Any, name: str, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise invalid(f"{name} must be true or false, got {value!r}")


def _int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    return as_int(value, name)


def _required(params: dict[str, Any], name: str) -> Any:
    if params.get(name) in (None, ""):
        raise invalid(f"Missing required field: {name}")
    return params[name]


# ---- Jobs --------------------------------------------------------------------------------------------
def jobs_create(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return {"job_id": ws.jobs.create_job(p)}


def jobs_reset(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.jobs.reset_job(_required(p, "job_id"), _required(p, "new_settings"))
    return {}


def jobs_update(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.jobs.update_job(_required(p, "job_id"), p.get("new_settings") or {}, p.get("fields_to_remove"))
    return {}


def jobs_delete(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.jobs.delete_job(_required(p, "job_id"))
    return {}


def jobs_get(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.jobs.get_job(_required(p, "job_id"))


def jobs_list(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    from airbricks.emulator.runs import decode_token

    offset = decode_token(p.get("page_token")) if p.get("page_token") else _int(p.get("offset"), "offset", 0)
    return ws.jobs.list_jobs(
        name=p.get("name") or None,
        limit=_int(p.get("limit"), "limit", 20),
        offset=offset,
        expand_tasks=_bool(p.get("expand_tasks"), "expand_tasks"),
    )


def jobs_run_now(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    _required(p, "job_id")
    return ws.jobs.run_now(p)


def runs_submit(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.jobs.submit(p)


def runs_get(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.jobs.run_json(_required(p, "run_id"))


def runs_get_output(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.jobs.get_output(_required(p, "run_id"))


def runs_cancel(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.jobs.cancel(_required(p, "run_id"))
    return {}


def runs_cancel_all(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.jobs.cancel_all(p.get("job_id"), _bool(p.get("all_queued_runs"), "all_queued_runs"))
    return {}


def runs_delete(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.jobs.delete_run(_required(p, "run_id"))
    return {}


def runs_repair(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    _required(p, "run_id")
    return ws.jobs.repair(p)


def runs_list(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    from airbricks.emulator.runs import decode_token

    offset = decode_token(p.get("page_token")) if p.get("page_token") else _int(p.get("offset"), "offset", 0)
    return ws.jobs.list_runs(
        {
            "job_id": p.get("job_id"),
            "active_only": _bool(p.get("active_only"), "active_only"),
            "completed_only": _bool(p.get("completed_only"), "completed_only"),
            "expand_tasks": _bool(p.get("expand_tasks"), "expand_tasks"),
            "limit": _int(p.get("limit"), "limit", 20),
            "offset": offset,
            "run_type": p.get("run_type"),
            "start_time_from": p.get("start_time_from"),
            "start_time_to": p.get("start_time_to"),
        }
    )


# ---- Clusters ----------------------------------------------------------------------------------------
def clusters_create(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return {"cluster_id": ws.clusters.create(p).cluster_id}


def clusters_get(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.clusters.get(_required(p, "cluster_id"))


def clusters_list(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return {"clusters": ws.clusters.list()}


def clusters_start(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.clusters.start(_required(p, "cluster_id"))
    return {}


def clusters_restart(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.clusters.restart(_required(p, "cluster_id"))
    return {}


def clusters_edit(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.clusters.edit(p)
    return {}


def clusters_delete(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.clusters.terminate(_required(p, "cluster_id"))
    return {}


def clusters_permanent_delete(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.clusters.permanent_delete(_required(p, "cluster_id"))
    return {}


def clusters_events(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.clusters.events(p)


def clusters_spark_versions(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return {"versions": [{"key": "15.4.x-scala2.12", "name": "15.4 LTS (Scala 2.12, Spark 3.5.0)"}]}


# ---- DBFS --------------------------------------------------------------------------------------------
def dbfs_get_status(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.files.dbfs_get_status(_required(p, "path"))


def dbfs_list(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.files.dbfs_list(_required(p, "path"))


def dbfs_put(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.files.dbfs_put(p)
    return {}


def dbfs_read(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.files.dbfs_read(
        _required(p, "path"), _int(p.get("offset"), "offset", 0), _int(p.get("length"), "length", 0)
    )


def dbfs_mkdirs(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.files.dbfs_mkdirs(_required(p, "path"))
    return {}


def dbfs_delete(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.files.dbfs_delete(_required(p, "path"), _bool(p.get("recursive"), "recursive"))
    return {}


def dbfs_create(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return ws.files.dbfs_create(p)


def dbfs_add_block(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.files.dbfs_add_block(p)
    return {}


def dbfs_close(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.files.dbfs_close(p)
    return {}


def dbfs_move(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    ws.files.dbfs_move(_required(p, "source_path"), _required(p, "destination_path"))
    return {}


def scim_me(ws: Workspace, p: dict[str, Any], *_: Any) -> Any:
    return {"id": "1", "userName": "emulator@localhost", "displayName": "Emulator", "active": True}


# (endpoint without version, method) -> (handler, accepted API versions)
_JOBS = ("2.1", "2.2")
_CLUSTERS = ("2.0", "2.1")
ROUTES: dict[tuple[str, str], tuple[Handler, tuple[str, ...]]] = {
    ("jobs/create", "POST"): (jobs_create, _JOBS),
    ("jobs/reset", "POST"): (jobs_reset, _JOBS),
    ("jobs/update", "POST"): (jobs_update, _JOBS),
    ("jobs/delete", "POST"): (jobs_delete, _JOBS),
    ("jobs/get", "GET"): (jobs_get, _JOBS),
    ("jobs/list", "GET"): (jobs_list, _JOBS),
    ("jobs/run-now", "POST"): (jobs_run_now, _JOBS),
    ("jobs/runs/submit", "POST"): (runs_submit, _JOBS),
    ("jobs/runs/get", "GET"): (runs_get, _JOBS),
    ("jobs/runs/get-output", "GET"): (runs_get_output, _JOBS),
    ("jobs/runs/cancel", "POST"): (runs_cancel, _JOBS),
    ("jobs/runs/cancel-all", "POST"): (runs_cancel_all, _JOBS),
    ("jobs/runs/delete", "POST"): (runs_delete, _JOBS),
    ("jobs/runs/repair", "POST"): (runs_repair, _JOBS),
    ("jobs/runs/list", "GET"): (runs_list, _JOBS),
    ("clusters/create", "POST"): (clusters_create, _CLUSTERS),
    ("clusters/get", "GET"): (clusters_get, _CLUSTERS),
    ("clusters/list", "GET"): (clusters_list, _CLUSTERS),
    ("clusters/start", "POST"): (clusters_start, _CLUSTERS),
    ("clusters/restart", "POST"): (clusters_restart, _CLUSTERS),
    ("clusters/edit", "POST"): (clusters_edit, _CLUSTERS),
    ("clusters/delete", "POST"): (clusters_delete, _CLUSTERS),
    ("clusters/permanent-delete", "POST"): (clusters_permanent_delete, _CLUSTERS),
    ("clusters/events", "POST"): (clusters_events, _CLUSTERS),
    ("clusters/spark-versions", "GET"): (clusters_spark_versions, _CLUSTERS),
    ("dbfs/get-status", "GET"): (dbfs_get_status, ("2.0",)),
    ("dbfs/list", "GET"): (dbfs_list, ("2.0",)),
    ("dbfs/put", "POST"): (dbfs_put, ("2.0",)),
    ("dbfs/read", "GET"): (dbfs_read, ("2.0",)),
    ("dbfs/mkdirs", "POST"): (dbfs_mkdirs, ("2.0",)),
    ("dbfs/delete", "POST"): (dbfs_delete, ("2.0",)),
    ("dbfs/create", "POST"): (dbfs_create, ("2.0",)),
    ("dbfs/add-block", "POST"): (dbfs_add_block, ("2.0",)),
    ("dbfs/close", "POST"): (dbfs_close, ("2.0",)),
    ("dbfs/move", "POST"): (dbfs_move, ("2.0",)),
    ("preview/scim/v2/Me", "GET"): (scim_me, ("2.0",)),
}


def _error(exc: ApiError, head: bool = False) -> Response:
    if head:
        return Response(status_code=exc.status, headers=exc.headers)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _check_auth(ws: Workspace, request: Request) -> None:
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(
            401, "UNAUTHENTICATED", "Missing Authorization header: send 'Authorization: Bearer <token>'."
        )
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise ApiError(
            401, "UNAUTHENTICATED", "Only bearer-token authentication is accepted by this workspace."
        )
    if not hmac.compare_digest(value.strip().encode(), ws.token.encode()):
        raise ApiError(403, "PERMISSION_DENIED", "Invalid access token.")


async def _params(request: Request, body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    # GETs may carry a JSON body too: the provider's async (deferrable) path sends runs/get that way.
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise malformed(f"Request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise malformed("Request body must be a JSON object")
        params.update(data)
    return params


class AccessLog:
    """ASGI middleware logging ``<method> <path> <status> <ms>ms`` once per request.

    Only the method, the path (no query string) and the outcome are logged: never a header, so never the
    bearer token, and never a body.

    :param app: the wrapped ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            access_log.info("%s %s %d %.0fms", scope["method"], scope["path"], status, elapsed_ms)


def build_app(ws: Workspace) -> Starlette:
    """The ASGI app serving ``ws``."""

    async def api(request: Request) -> Response:
        head = request.method == "HEAD"
        try:
            _check_auth(ws, request)
            injected = ws.faults.take_http(request.method, request.url.path)
            if injected is not None:
                raise injected
            match = _API.match(request.url.path)
            if not match:
                raise ApiError(
                    404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.url.path}'"
                )
            version, endpoint = match.groups()
            body = await request.body()
            if endpoint.startswith(("fs/files/", "fs/directories/")) and version == "2.0":
                return await run_in_threadpool(_files_api, ws, request, endpoint, body)
            route = ROUTES.get((endpoint, request.method))
            if route is None or version not in route[1]:
                known = any(e == endpoint and version in v for (e, _), (_, v) in ROUTES.items())
                if known:
                    raise ApiError(
                        405, "BAD_REQUEST", f"Method {request.method} is not allowed for {request.url.path}"
                    )
                raise ApiError(
                    404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.url.path}'"
                )
            params = await _params(request, body)
            result = await run_in_threadpool(route[0], ws, params, request, body)
            return JSONResponse(result)
        except ApiError as exc:
            return _error(exc, head)
        except Exception:
            log.exception("emulator error on %s %s", request.method, request.url.path)
            return _error(
                ApiError(500, "INTERNAL_ERROR", "Internal error in the emulator; see its log"), head
            )

    async def admin(request: Request) -> Response:
        try:
            _check_auth(ws, request)
            what = request.path_params["what"]
            body = await request.body()
            if what == "state" and request.method == "GET":
                return JSONResponse(await run_in_threadpool(ws.state))
            if what == "faults":
                if request.method == "GET":
                    return JSONResponse(ws.faults.snapshot())
                if request.method == "DELETE":
                    ws.faults.clear()
                    return JSONResponse({})
                if request.method == "POST":
                    ws.faults.arm(await _params(request, body))
                    return JSONResponse(ws.faults.snapshot())
            if what == "reset" and request.method == "POST":
                await run_in_threadpool(ws.reset)
                return JSONResponse({})
            raise not_found(f"No emulator admin endpoint '{request.method} /_emulator/{what}'")
        except ApiError as exc:
            return _error(exc)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def host_metadata(request: Request) -> Response:
        # databricks-sdk probes this unauthenticated discovery document when a client is built.
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"oidc_endpoint": f"{base}/oidc", "workspace_id": WORKSPACE_ID, "cloud": "AWS"})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    return Starlette(
        middleware=[Middleware(AccessLog)],
        routes=[
            Route("/_emulator/health", health, methods=["GET"]),
            Route("/.well-known/databricks-config", host_metadata, methods=["GET"]),
            Route("/_emulator/{what}", admin, methods=["GET", "POST", "DELETE"]),
            Route("/api/{rest:path}", api, methods=methods),
        ],
    )


def _files_api(ws: Workspace, request: Request, endpoint: str, body: bytes) -> Response:
    kind, _, rest = endpoint.partition("/")[2].partition("/")
    path = "/" + rest
    method = request.method
    head = method == "HEAD"
    try:
        if kind == "files":
            if method == "POST" and request.query_params.get("action"):
                raise ApiError(
                    501,
                    "NOT_IMPLEMENTED",
                    "Multipart/resumable uploads (databricks-sdk uses them from 50 MB) are not "
                    "supported by the emulator: upload smaller files or PUT the file in one request.",
                )
            if method == "PUT":
                ws.files.put_file(path, body, _bool(request.query_params.get("overwrite"), "overwrite"))
                return Response(status_code=204)
            if method in ("GET", "HEAD"):
                local, headers = ws.files.file_meta(path)
                if head:
                    return Response(status_code=200, headers=headers)
                data = local.read_bytes()
                status = 200
                rng = request.headers.get("range")
                if rng and rng.startswith("bytes="):
                    start_s, _, end_s = rng[6:].partition("-")
                    start = int(start_s or 0)
                    end = int(end_s) if end_s else len(data) - 1
                    headers["content-range"] = f"bytes {start}-{end}/{len(data)}"
                    data = data[start : end + 1]
                    status = 206
                headers["content-length"] = str(len(data))
                return Response(content=data, status_code=status, headers=headers)
            if method == "DELETE":
                ws.files.delete_file(path)
                return Response(status_code=204)
        elif kind == "directories":
            if method == "GET":
                page_size = _int(request.query_params.get("page_size"), "page_size", 1000)
                return JSONResponse(
                    ws.files.list_directory(path, page_size, request.query_params.get("page_token"))
                )
            if method == "PUT":
                ws.files.create_directory(path)
                return Response(status_code=204)
            if method == "HEAD":
                ws.files.directory_exists(path)
                return Response(status_code=200)
            if method == "DELETE":
                ws.files.delete_directory(path)
                return Response(status_code=204)
        raise ApiError(405, "BAD_REQUEST", f"Method {method} is not allowed for /api/2.0/{endpoint}")
    except ApiError as exc:
        return _error(exc, head)
