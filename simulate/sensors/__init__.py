"""Live sensors: the OGC SensorThings API v1.1 data model, its store, OData queries, alerts and MQTT.

    model / entities   the data model and validation of request bodies
    odata              $filter/$orderby (lark) and the other query options, compiled to SQL
    store / sqlite     the SensorStore interface and the embedded SQLite (WAL) implementation
    alerts             thresholds with hysteresis; alert events and their lifecycle
    service            SensorService: validation, idempotent ingest, live state, the hub
    mqtt               the MQTT bridge (paho-mqtt; QoS 1, persistent session)
    sample / replay    a sample network for a twin and a storm replay over MQTT

No FastAPI here: `api/routers/sensorthings.py` and `api/routers/live.py` adapt it.
"""

from simulate.sensors.errors import (BrokerError, EntityNotFound, EventNotFound, InvalidEntity, InvalidQuery,
                                     InvalidTransition, SensorError)
from simulate.sensors.service import SensorService
from simulate.sensors.store import Parent, SensorStore

__all__ = ["SensorService", "SensorStore", "Parent", "SensorError", "EntityNotFound", "InvalidEntity",
           "InvalidQuery", "EventNotFound", "InvalidTransition", "BrokerError"]
