"""Errors the service raises; each transport maps ``status`` to its own code (HTTP status, gRPC code)."""

from __future__ import annotations


class ServiceError(Exception):
    status = 500

    def __init__(self, message: str, detail: list | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def body(self) -> dict:
        out: dict = {"message": self.message}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


class Invalid(ServiceError):
    status = 422


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409
