"""The one authorisation dependency every route goes through.

Anonymous callers read `public` data. A key (header `X-API-Key` or
`Authorization: Bearer <key>`) carries a clearance (`internal`, `restricted`)
and scopes (`scenario:run`, `sensors:write`...). Routes ask with
`Depends(authorize(...))`; handlers that need per-layer checks use
`principal.require_clearance(classification)`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from fastapi import Depends, Request

from api.errors import Forbidden, Unauthorized
from api.settings import ApiKey, Settings
from twin.config import CLASSIFICATION_RANK


@dataclass(frozen=True)
class Principal:
    name: str
    clearance: str = "public"
    scopes: frozenset[str] = field(default_factory=frozenset)

    def can_read(self, classification: str) -> bool:
        return CLASSIFICATION_RANK.get(self.clearance, 0) >= CLASSIFICATION_RANK.get(classification, 2)

    def require_clearance(self, classification: str, what: str) -> None:
        if not self.can_read(classification):
            if self.name == "anonymous":
                raise Unauthorized(f"{what} is {classification}: an API key with that clearance is required")
            raise Forbidden(f"{what} is {classification}; your clearance is {self.clearance}")


ANONYMOUS = Principal("anonymous")


class KeyRing:
    def __init__(self, settings: Settings):
        keys = list(settings.api_keys)
        if settings.api_keys_file:
            data = tomllib.loads(settings.api_keys_file.read_text(encoding="utf-8"))
            keys += [ApiKey.model_validate(k) for k in data.get("keys", [])]
        self._by_key = {k.key: Principal(k.name, k.clearance, frozenset(k.scopes)) for k in keys}

    def principal(self, request: Request) -> Principal:
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key:
            return ANONYMOUS
        principal = self._by_key.get(key)
        if principal is None:
            raise Unauthorized("unknown API key")
        return principal


def authorize(*scopes: str):
    """Dependency: the caller, who must hold every scope named."""

    def dependency(request: Request) -> Principal:
        principal = request.app.state.keyring.principal(request)
        missing = [s for s in scopes if s not in principal.scopes]
        if missing:
            if principal is ANONYMOUS:
                raise Unauthorized(f"scope {', '.join(missing)} required")
            raise Forbidden(f"scope {', '.join(missing)} required")
        return principal

    return dependency


Reader = Depends(authorize())
