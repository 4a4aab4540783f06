"""The root of every core exception.

Core packages (`twin`, `layers`, `tiles`, `simulate`) raise subclasses of
`TwinError` and know nothing of HTTP; `api/errors.py` maps them to status
codes in one table. `message` is safe to show a client; `detail` is for logs.
"""

from __future__ import annotations


class TwinError(Exception):
    """Base of all twin errors.

    source: the file, layer or feature the problem is in, when there is one.
    field:  the config or attribute field at fault, when there is one.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 detail: str | None = None):
        self.message = message
        self.source = source
        self.field = field
        self.detail = detail
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class ConfigError(TwinError):
    """city.toml is missing, unreadable or invalid."""


class BuildError(TwinError):
    """The build could not be completed (layers disagree, nothing to build...)."""


class StoreError(TwinError):
    """The twin store is missing, locked or damaged."""


class TwinNotFound(StoreError):
    """No twin at the given location."""


class LayerNotFound(StoreError):
    """The twin has no layer of that name."""
