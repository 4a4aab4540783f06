"""In-process fan-out of what the sensor service stored, to the WebSocket and the MQTT bridge.

Callbacks run on the thread that committed (the ingest worker or a request thread); a subscriber
that needs another thread (an asyncio loop) hands the message over itself. A failing subscriber is
logged and does not stop the others.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger("twin.sensors")

Message = dict[str, Any]


class Hub:
    def __init__(self) -> None:
        self._subs: dict[int, Callable[[Message], None]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Message], None]) -> Callable[[], None]:
        """Register `callback`; returns the function that unsubscribes it."""
        with self._lock:
            key = self._next
            self._next += 1
            self._subs[key] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subs.pop(key, None)

        return unsubscribe

    def publish(self, message: Message) -> None:
        with self._lock:
            subs = list(self._subs.values())
        for callback in subs:
            try:
                callback(message)
            except Exception:  # one broken subscriber must not block ingest
                log.exception("sensor hub subscriber failed")

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)
