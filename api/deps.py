"""Request-scoped access to what create_app set up (no module globals)."""

from __future__ import annotations

from fastapi import Request

from twin.store.base import TwinStore


def get_store(request: Request) -> TwinStore:
    return request.app.state.store


def get_settings(request: Request):
    return request.app.state.settings
