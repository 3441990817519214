"""Databricks' error model: ``{"error_code": "...", "message": "..."}`` with the matching HTTP status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered to the client in Databricks' JSON shape.

    :param status: HTTP status code.
    :param error_code: Databricks error code, e.g. ``INVALID_PARAMETER_VALUE``.
    :param message: Human-readable explanation naming the offending field or resource.
    :param headers: Extra response headers (``Retry-After`` for 429/503).
    """

    def __init__(self, status: int, error_code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def invalid(message: str) -> ApiError:
    """400 INVALID_PARAMETER_VALUE."""
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def malformed(message: str) -> ApiError:
    """400 MALFORMED_REQUEST (the body is not the JSON the endpoint expects)."""
    return ApiError(400, "MALFORMED_REQUEST", message)


def not_found(message: str) -> ApiError:
    """404 RESOURCE_DOES_NOT_EXIST."""
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)


def already_exists(message: str) -> ApiError:
    """409 RESOURCE_ALREADY_EXISTS."""
    return ApiError(409, "RESOURCE_ALREADY_EXISTS", message)


def invalid_state(message: str) -> ApiError:
    """400 INVALID_STATE (e.g. starting a cluster that is already running)."""
    return ApiError(400, "INVALID_STATE", message)


def as_int(value: Any, name: str) -> int:
    """``int(value)``, or Databricks' 400 INVALID_PARAMETER_VALUE naming the parameter."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"{name} must be an integer, got {value!r}") from None


def coerce_int(obj: dict[str, Any], key: str, where: str, minimum: int = 0) -> None:
    """Accept ``"60"`` for 60, as Databricks does (the Airflow provider stringifies numbers in ``json``)."""
    if key not in obj or obj[key] is None:
        return
    value = obj[key]
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum or (isinstance(value, float) and value != number):
        raise invalid(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    obj[key] = number
