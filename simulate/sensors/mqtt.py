"""The SensorThings MQTT extension over an external broker (Mosquitto), with paho-mqtt.

Clients create Observations by publishing to `v1.1/Datastreams(<id>)/Observations`, and receive
created entities by subscribing to the entity topics (`v1.1/Datastreams(<id>)/Observations`,
`v1.1/Observations`, `v1.1/Things`, `v1.1/Things(<id>)/Datastreams`, ...).

Durability: the bridge connects with MQTT 5, a fixed client id, `clean_start=False` and a session
expiry, subscribes with QoS 1, and acknowledges (PUBACK, manual) a message only after the batch
holding it is committed. A broker restart or a crash of the bridge therefore loses nothing: the
broker keeps the session and redelivers what was not acknowledged, and the store's unique
(Datastream, phenomenonTime) key turns a redelivery into a no-op. The ingest subscription uses the
MQTT 5 No Local option, so the bridge never re-ingests the observations it publishes itself.
Brokers must queue enough for an offline session (Mosquitto: `max_queued_messages`).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from simulate.sensors.errors import BrokerError, SensorError
from simulate.sensors.model import API_VERSION, ENTITIES
from simulate.sensors.service import SensorService

log = logging.getLogger("twin.sensors.mqtt")

CREATE_TOPIC = re.compile(rf"^{re.escape(API_VERSION)}/Datastreams\((\d+)\)/Observations$")
INGEST_SUBSCRIPTION = f"{API_VERSION}/+/Observations"


@dataclass(frozen=True)
class BridgeConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "twin-sensors-ingest"
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 20_000          # QoS 1 messages in flight to us, unacknowledged
    batch_max: int = 5_000                 # observations per transaction
    # topics a created entity is announced on: "datastream" (v1.1/Datastreams(<id>)/Observations),
    # "navigation" (every parent's collection, e.g. FeaturesOfInterest(<id>)/Observations, Things(<id>)/
    # Datastreams), "collection" (v1.1/Observations), "entity" (v1.1/Observations(<id>))
    publish: tuple[str, ...] = ("datastream", "navigation", "collection")
    qos_out: int = 0
    keepalive_s: int = 30


@dataclass
class BridgeStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    published: int = 0
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


class MqttBridge:
    """Ingest from and publish to the broker; `start()`/`stop()` from the app's lifespan."""

    def __init__(self, service: SensorService, config: BridgeConfig = BridgeConfig()):
        self.service = service
        self.config = config
        self.stats = BridgeStats()
        self._inbox: queue.Queue[tuple[int, int, str, bytes]] = queue.Queue()
        self._epoch = 0                    # counts connections: a PUBACK belongs to the connection it came on
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._unsubscribe = None
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(0.1, 2.0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- lifecycle
    def start(self, timeout_s: float = 10.0) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        try:
            self.client.connect(self.config.host, self.config.port, self.config.keepalive_s, clean_start=False,
                                properties=props)
        except OSError as exc:
            raise BrokerError(f"cannot reach the MQTT broker at {self.config.host}:{self.config.port}",
                              detail=str(exc)) from None
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="sensors-ingest", daemon=True)
        self._worker.start()
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            self.stop()
            raise BrokerError(f"the MQTT broker at {self.config.host}:{self.config.port} did not accept us")
        self._unsubscribe = self.service.hub.subscribe(self._outgoing)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
            self._worker = None
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "MqttBridge":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.stats.last_error = f"connect refused: {reason}"
            return
        self._epoch += 1
        client.subscribe(INGEST_SUBSCRIPTION, options=SubscribeOptions(qos=1, noLocal=True))
        self._connected.set()
        log.info("MQTT bridge connected to %s:%s (session present: %s)", self.config.host, self.config.port,
                 flags.session_present)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("MQTT bridge lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((self._epoch, msg.mid, msg.topic, msg.payload))

    # -- ingest worker
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self.config.batch_max:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            self._ingest(batch)

    def _ingest(self, batch: list[tuple[int, int, str, bytes]]) -> None:
        self.stats.received += len(batch)
        valid, mids = [], []
        for epoch, mid, topic, payload in batch:
            m = CREATE_TOPIC.match(topic)
            if m is None:
                mids.append((epoch, mid))   # not a create topic: nothing to store
                continue
            try:
                valid.append(self.service.observation_from(payload, int(m.group(1))))
            except SensorError as exc:
                self._reject(topic, exc)
            mids.append((epoch, mid))
        if valid:
            self._store(valid)
        for epoch, mid in mids:             # only now, after COMMIT, and only on the connection it came on:
            if epoch == self._epoch:        # older ones are redelivered, and stored once
                self.client.ack(mid, 1)

    def _store(self, valid: list) -> None:
        try:
            res = self.service.ingest(valid)
        except SensorError:
            if len(valid) == 1:
                self._reject("batch", SensorError("stored nothing"))
                return
            for obs in valid:                # find the one that spoils the batch
                try:
                    res1 = self.service.ingest([obs])
                    self._count(res1.created)
                except SensorError as exc:
                    self._reject(f"Datastreams({obs.datastream_id})", exc)
            return
        self._count(res.created)

    def _count(self, created: list[bool]) -> None:
        n = sum(created)
        self.stats.stored += n
        self.stats.duplicates += len(created) - n

    def _reject(self, topic: str, exc: SensorError) -> None:
        self.stats.rejected += 1
        self.stats.last_error = f"{topic}: {exc.message}"
        log.warning("rejected an observation on %s: %s", topic, exc.message)

    # -- publishing what was created
    def _outgoing(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "observations":
            for ds, foi, obs in message["created"]:
                payload = orjson.dumps(obs)
                for topic in self._observation_topics(ds, foi, obs["@iot.id"]):
                    self.client.publish(topic, payload, qos=self.config.qos_out)
                    self.stats.published += 1
        elif kind == "entity":
            payload = orjson.dumps(message["json"])
            for topic in entity_topics(message["set"], message["id"], message["row"], self.config.publish):
                self.client.publish(topic, payload, qos=self.config.qos_out)
                self.stats.published += 1

    def _observation_topics(self, ds: int, foi: int, oid: int) -> list[str]:
        out = []
        if "datastream" in self.config.publish or "navigation" in self.config.publish:
            out.append(f"{API_VERSION}/Datastreams({ds})/Observations")
        if "navigation" in self.config.publish:
            out.append(f"{API_VERSION}/FeaturesOfInterest({foi})/Observations")
        if "collection" in self.config.publish:
            out.append(f"{API_VERSION}/Observations")
        if "entity" in self.config.publish:
            out.append(f"{API_VERSION}/Observations({oid})")
        return out


def entity_topics(set_name: str, entity_id: int, row: dict[str, Any], publish: tuple[str, ...]) -> list[str]:
    """Topics on which a created or updated entity is announced."""
    et = ENTITIES[set_name]
    out = []
    if "collection" in publish:
        out.append(f"{API_VERSION}/{set_name}")
    if "entity" in publish or "collection" in publish:
        out.append(f"{API_VERSION}/{set_name}({entity_id})")
    if "navigation" in publish:
        for nav in et.navs:
            if nav.many or row.get(nav.fk) is None:
                continue
            owner = ENTITIES[nav.target]
            back = next((n for n in owner.navs if n.many and n.fk == nav.fk and n.target == set_name), None)
            if back is not None:
                out.append(f"{API_VERSION}/{owner.set_name}({row[nav.fk]})/{back.name}")
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the bridge alone: python -m simulate.sensors.mqtt TWIN_DIR [--host H] [--port P] [--client-id C]."""
    import argparse
    import signal

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("twin_dir")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--client-id", default="twin-sensors-ingest")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    service = SensorService.for_twin(a.twin_dir)
    bridge = MqttBridge(service, BridgeConfig(host=a.host, port=a.port, client_id=a.client_id))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    bridge.start()
    print("ready", flush=True)
    while not done.wait(1.0):
        pass
    bridge.stop()
    service.close()


if __name__ == "__main__":
    main()
