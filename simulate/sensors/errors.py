"""Exceptions of the sensor package (no HTTP here: `api/errors.py` maps them).

    SensorError             base
      EntityNotFound        no entity with that id (404)
      InvalidEntity         a body that cannot be stored: malformed JSON, missing or wrong-typed
                            field, wrong unit or datatype, unknown reference, time in the future (400)
      InvalidQuery          an OData query option that cannot be parsed or compiled (400)
      EventNotFound         no alert event with that id (404)
      InvalidTransition     an alert lifecycle step that is not allowed, e.g. acknowledging a closed event (409)
      BrokerError           the MQTT broker cannot be reached or refused us (503)
"""

from __future__ import annotations

from twin.errors import TwinError


class SensorError(TwinError):
    """Base of sensor errors."""


class EntityNotFound(SensorError):
    """No SensorThings entity with that id."""


class InvalidEntity(SensorError):
    """A create/update body that cannot be stored; nothing was stored."""


class InvalidQuery(SensorError):
    """An OData query option that cannot be parsed or compiled."""


class EventNotFound(SensorError):
    """No alert event with that id."""


class InvalidTransition(SensorError):
    """An alert lifecycle step that is not allowed from the event's state."""


class BrokerError(SensorError):
    """The MQTT broker cannot be reached or refused the connection."""
