"""Files API 2.0 (Unity Catalog Volumes) and DBFS 2.0, backed by a local directory.

``/Volumes/<catalog>/<schema>/<volume>/...`` lives under ``<root>/Volumes/...`` and ``dbfs:/x`` under
``<root>/dbfs/x``, so task code (``dbutils.fs``) and API clients see the same files.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import itertools
import pathlib
import shutil
import threading
from typing import Any

from airbricks.emulator.errors import ApiError, invalid, not_found

_DBFS_MAX_BLOCK = 1024 * 1024  # DBFS put/add-block/read are limited to 1 MB per call


def _not_found_files(path: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"The file or directory {path} does not exist.")


class LocalFiles:
    """Both APIs over one local root.

    :param root: the workspace root directory (``<state-dir>/workspace``).
    """

    def __init__(self, root: pathlib.Path):
        self.root = root
        self._handles: dict[int, tuple[pathlib.Path, Any]] = {}
        self._handle_ids = itertools.count(1)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Delete every Volume file and DBFS file, and forget open DBFS upload handles."""
        with self._lock:
            for _, fh in self._handles.values():
                fh.close()
            self._handles.clear()
            shutil.rmtree(self.root, ignore_errors=True)

    # -- path mapping ---------------------------------------------------------------------------------
    def volume_path(self, path: str) -> pathlib.Path:
        parts = [p for p in path.split("/") if p]
        if len(parts) < 4 or parts[0] != "Volumes":
            raise invalid(
                f"Path {path!r} is not a Unity Catalog volume path (/Volumes/<catalog>/<schema>/<volume>/...)"
            )
        return self._safe(self.root / "Volumes", parts[1:], path)

    def dbfs_path(self, path: Any) -> pathlib.Path:
        if not isinstance(path, str) or not path:
            raise invalid("Missing required field: path")
        text = path[len("dbfs:") :] if path.startswith("dbfs:") else path
        if not text.startswith("/"):
            raise invalid(f"Path {path!r} must be absolute (dbfs:/... or /...)")
        return self._safe(self.root / "dbfs", [p for p in text.split("/") if p], path)

    @staticmethod
    def _safe(base: pathlib.Path, parts: list[str], original: str) -> pathlib.Path:
        if any(p in (".", "..") for p in parts):
            raise invalid(f"Path {original!r} must not contain '.' or '..' components")
        return base.joinpath(*parts)

    # -- Files API ------------------------------------------------------------------------------------
    def put_file(self, path: str, data: bytes, overwrite: bool) -> None:
        local = self.volume_path(path)
        if local.is_dir():
            raise ApiError(409, "ALREADY_EXISTS", f"{path} is a directory")
        if local.exists() and not overwrite:
            raise ApiError(409, "ALREADY_EXISTS", f"The file {path} already exists and overwrite is false.")
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.upload")
        tmp.write_bytes(data)
        tmp.replace(local)  # readers never see a half-written file

    def file_meta(self, path: str) -> tuple[pathlib.Path, dict[str, str]]:
        local = self.volume_path(path)
        if not local.is_file():
            raise _not_found_files(path)
        stat = local.stat()
        return local, {
            "content-type": "application/octet-stream",
            "content-length": str(stat.st_size),
            "last-modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
        }

    def delete_file(self, path: str) -> None:
        local = self.volume_path(path)
        if not local.is_file():
            raise _not_found_files(path)
        local.unlink()

    def list_directory(self, path: str, page_size: int, page_token: str | None) -> dict[str, Any]:
        local = self.volume_path(path)
        if not local.is_dir():
            raise _not_found_files(path)
        entries = sorted(p for p in local.iterdir() if not p.name.startswith("."))
        start = int(page_token) if page_token and page_token.isdigit() else 0
        page = entries[start : start + page_size]
        base = "/" + "/".join(p for p in path.split("/") if p)
        contents = []
        for entry in page:
            item: dict[str, Any] = {
                "path": f"{base}/{entry.name}",
                "name": entry.name,
                "is_directory": entry.is_dir(),
            }
            if entry.is_file():
                stat = entry.stat()
                item.update(file_size=stat.st_size, last_modified=int(stat.st_mtime * 1000))
            contents.append(item)
        out: dict[str, Any] = {"contents": contents}
        if start + page_size < len(entries):
            out["next_page_token"] = str(start + page_size)
        return out

    def create_directory(self, path: str) -> None:
        local = self.volume_path(path)
        if local.is_file():
            raise ApiError(409, "ALREADY_EXISTS", f"{path} exists and is a file")
        local.mkdir(parents=True, exist_ok=True)

    def directory_exists(self, path: str) -> None:
        if not self.volume_path(path).is_dir():
            raise _not_found_files(path)

    def delete_directory(self, path: str) -> None:
        local = self.volume_path(path)
        if not local.is_dir():
            raise _not_found_files(path)
        if any(local.iterdir()):
            raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"The directory {path} is not empty.")
        local.rmdir()

    # -- DBFS -----------------------------------------------------------------------------------------
    def _dbfs_info(self, local: pathlib.Path, path: str) -> dict[str, Any]:
        stat = local.stat()
        return {
            "path": path,
            "is_dir": local.is_dir(),
            "file_size": 0 if local.is_dir() else stat.st_size,
            "modification_time": int(stat.st_mtime * 1000),
        }

    @staticmethod
    def _display(path: str) -> str:
        text = path[len("dbfs:") :] if path.startswith("dbfs:") else path
        return "/" + "/".join(p for p in text.split("/") if p)

    def dbfs_get_status(self, path: Any) -> dict[str, Any]:
        local = self.dbfs_path(path)
        if not local.exists():
            raise not_found(f"No file or directory exists on path {path}.")
        return self._dbfs_info(local, self._display(path))

    def dbfs_list(self, path: Any) -> dict[str, Any]:
        local = self.dbfs_path(path)
        if not local.exists():
            raise not_found(f"No file or directory exists on path {path}.")
        shown = self._display(path)
        if local.is_file():
            return {"files": [self._dbfs_info(local, shown)]}
        prefix = shown.rstrip("/")
        return {
            "files": [
                self._dbfs_info(p, f"{prefix}/{p.name}")
                for p in sorted(local.iterdir())
                if not p.name.startswith(".")
            ]
        }

    def dbfs_put(self, body: dict[str, Any]) -> None:
        local = self.dbfs_path(body.get("path"))
        data = _b64(body.get("contents", ""), "contents")
        if len(data) > _DBFS_MAX_BLOCK:
            raise ApiError(
                400, "MAX_BLOCK_SIZE_EXCEEDED", "contents exceeds 1 MB; use create/add-block/close"
            )
        self._dbfs_check_writable(local, body)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)

    def _dbfs_check_writable(self, local: pathlib.Path, body: dict[str, Any]) -> None:
        if local.is_dir():
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"{body.get('path')} is a directory")
        if local.exists() and not _truthy(body.get("overwrite")):
            raise ApiError(
                400,
                "RESOURCE_ALREADY_EXISTS",
                f"A file or directory already exists at the input path {body.get('path')}.",
            )

    def dbfs_create(self, body: dict[str, Any]) -> dict[str, Any]:
        local = self.dbfs_path(body.get("path"))
        self._dbfs_check_writable(local, body)
        local.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            handle = next(self._handle_ids)
            self._handles[handle] = (local, local.open("wb"))
        return {"handle": handle}

    def _handle(self, body: dict[str, Any]) -> tuple[pathlib.Path, Any]:
        try:
            return self._handles[int(body.get("handle"))]  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise not_found(f"Handle {body.get('handle')!r} does not exist.") from None

    def dbfs_add_block(self, body: dict[str, Any]) -> None:
        data = _b64(body.get("data", ""), "data")
        if len(data) > _DBFS_MAX_BLOCK:
            raise ApiError(400, "MAX_BLOCK_SIZE_EXCEEDED", "data exceeds 1 MB per block")
        with self._lock:
            _, fh = self._handle(body)
            fh.write(data)

    def dbfs_close(self, body: dict[str, Any]) -> None:
        with self._lock:
            _, fh = self._handle(body)
            fh.close()
            del self._handles[int(body["handle"])]

    def dbfs_read(self, path: Any, offset: int, length: int) -> dict[str, Any]:
        local = self.dbfs_path(path)
        if not local.exists():
            raise not_found(f"No file or directory exists on path {path}.")
        if local.is_dir():
            raise invalid(f"{path} is a directory")
        if offset < 0 or length < 0:
            raise invalid("offset and length must be non-negative")
        length = min(length or _DBFS_MAX_BLOCK, _DBFS_MAX_BLOCK)
        with local.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
        return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}

    def dbfs_mkdirs(self, path: Any) -> None:
        local = self.dbfs_path(path)
        if local.is_file():
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"A file exists at {path}")
        local.mkdir(parents=True, exist_ok=True)

    def dbfs_delete(self, path: Any, recursive: bool) -> None:
        local = self.dbfs_path(path)
        if not local.exists():
            return  # DBFS delete of a missing path succeeds
        if local.is_dir():
            if any(local.iterdir()) and not recursive:
                raise ApiError(400, "IO_ERROR", f"{path} is a non-empty directory; pass recursive=true")
            shutil.rmtree(local)
        else:
            local.unlink()

    def dbfs_move(self, source: Any, destination: Any) -> None:
        src, dst = self.dbfs_path(source), self.dbfs_path(destination)
        if not src.exists():
            raise not_found(f"No file or directory exists on path {source}.")
        if dst.exists():
            raise ApiError(
                400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at {destination}."
            )
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)


def _b64(value: Any, name: str) -> bytes:
    try:
        return base64.b64decode(value or "", validate=True)
    except (binascii.Error, TypeError) as exc:
        raise invalid(f"{name} must be base64-encoded: {exc}") from exc


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))
