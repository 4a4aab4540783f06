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
Brokers must persist sessions (Mosquitto: `persistence true`, in a folder its user can write) and
queue enough for an offline session (`max_queued_messages`); a reconnect that finds no session is
counted in `BridgeStats.sessions_lost` and logged as an error.

Threads: one thread owns the paho client and runs its network loop itself (paho's external-loop
API: `loop_read`, `loop_write`, `loop_misc`). It reads every message already waiting, validates
and commits them as one batch, then queues their PUBACKs and the announcements and writes them
out, and reads again. With no second thread there is no hand-over of the GIL per packet (which,
between a network thread and an ingest thread, starved the network thread whenever ingest ran
Python code), a PUBACK is always queued on the connection its message came on, and batches grow
with the load. Announcements of entities created elsewhere (HTTP) reach the loop through an outbox.
"""

from __future__ import annotations

import collections
import logging
import re
import select
import socket
import struct
import threading
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

# A batch's PUBACKs and QoS 0 announcements are encoded here and handed to paho as one queued
# write: paho's per-message publish()/ack() (a tracking object with a Condition, a packet, a write
# each) cost more than validating and storing the observation. This leans on paho's internal
# `_packet_queue` (paho-mqtt 1.x and 2.x); without it the bridge falls back to publish()/ack().
_RAW = callable(getattr(mqtt.Client, "_packet_queue", None))
_PUBACK_CMD, _PUBLISH_CMD = 0x40, 0x30


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, b = divmod(n, 128)
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def encode_pubacks(mids: list[int]) -> bytes:
    """MQTT 5 PUBACKs (reason: success, which may be left out) for `mids`."""
    return b"".join(struct.pack("!BBH", _PUBACK_CMD, 2, mid) for mid in mids)


def encode_publish_qos0(topic: str, payload: bytes) -> bytes:
    """An MQTT 5 QoS 0 PUBLISH without properties."""
    t = topic.encode()
    return b"%c%s%s%s\x00%s" % (_PUBLISH_CMD, _varint(len(t) + len(payload) + 3), struct.pack("!H", len(t)), t,
                                  payload)


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
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 2.0
    outbox_max: int = 100_000              # announcements from other threads waiting for the loop


@dataclass
class BridgeStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    published: int = 0
    dropped: int = 0                       # announcements dropped: outbox full (QoS 0, best effort)
    batches: int = 0                       # transactions: received / batches is the mean batch
    connects: int = 0
    sessions_lost: int = 0                 # reconnects on which the broker no longer had our session
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


class MqttBridge:
    """Ingest from and publish to the broker; `start()`/`stop()` from the app's lifespan."""

    def __init__(self, service: SensorService, config: BridgeConfig = BridgeConfig()):
        self.service = service
        self.config = config
        self.stats = BridgeStats()
        self._batch: list[tuple[int, str, bytes]] = []          # (mid, topic, payload), this connection's
        self._outbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._delay = config.reconnect_min_s
        self._unsubscribe = None
        self._ready = threading.Event()    # connected and the ingest subscription acknowledged (SUBACK)
        self._sub_mid: int | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # external loop: packets are queued and our loop writes them (no write per packet)
        self.client.on_socket_register_write = lambda client, userdata, sock: None

    # -- lifecycle
    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; returns once the broker has acknowledged the ingest subscription."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        self._stop.clear()
        self._ready.clear()
        try:
            self.client.connect(self.config.host, self.config.port, self.config.keepalive_s, clean_start=False,
                                properties=props)
        except OSError as exc:
            raise BrokerError(f"cannot reach the MQTT broker at {self.config.host}:{self.config.port}",
                              detail=str(exc)) from None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="sensors-mqtt", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise BrokerError(f"the MQTT broker at {self.config.host}:{self.config.port} did not accept us",
                              detail=self.stats.last_error or "no CONNACK or SUBACK in time")
        self._unsubscribe = self.service.hub.subscribe(self._outgoing)

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect. The broker keeps our session (and queues for it) unless `end_session`.

        What was received and not yet committed is not acknowledged: the broker redelivers it.
        """
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        # the loop has ended: this thread owns the client now
        if self.client.socket() is not None:
            props = None
            if end_session:
                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
            self.client.disconnect(properties=props)
            self.client.loop_write()
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_r = self._wake_w = None
        self._ready.clear()

    def __enter__(self) -> "MqttBridge":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    # -- the loop (the only thread that touches the client once started)
    def _run(self) -> None:
        self._thread_id = threading.get_ident()
        while not self._stop.is_set():
            sock = self.client.socket()
            if sock is None:
                self._reconnect()
                continue
            try:
                self._step(sock)
            except Exception as exc:  # a failed commit (disk full...): nothing acked, start over
                log.exception("MQTT bridge: ingest failed; reconnecting so the broker redelivers")
                self.stats.last_error = f"ingest failed: {exc}"
                self._batch.clear()
                self._stop.wait(self._delay)
                self._reconnect()

    def _step(self, sock: Any) -> None:
        client = self.client
        wlist = [sock] if client.want_write() else []
        try:
            readable, _, _ = select.select([sock, self._wake_r], wlist, [], 1.0)
        except (OSError, ValueError):      # the socket was closed under us
            readable = []
        if self._wake_r in readable:
            try:
                self._wake_r.recv(65536)
            except BlockingIOError:
                pass
        if sock in readable:
            self._read()
        if self._batch:
            self._ingest()
        self._flush_outbox()
        if client.want_write():
            client.loop_write()
        client.loop_misc()

    def _read(self) -> None:
        """Read every packet already waiting (up to a batch) into `_batch`."""
        while len(self._batch) < self.config.batch_max:
            before = len(self._batch)
            if self.client.loop_read() != mqtt.MQTT_ERR_SUCCESS or self.client.socket() is None:
                return
            if len(self._batch) == before:  # nothing more waiting (or not a PUBLISH): back to select
                return

    def _reconnect(self) -> None:
        if self._stop.wait(self._delay):
            return
        self._delay = min(self._delay * 2, self.config.reconnect_max_s)
        self._batch.clear()                 # unacknowledged: redelivered on the resumed session
        try:
            self.client.reconnect()
        except OSError as exc:
            self.stats.last_error = f"cannot reach the broker: {exc}"

    def _wake(self) -> None:
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except (BlockingIOError, OSError):
                pass                        # already awake (buffer full) or closed

    # -- paho callbacks (on the loop thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.stats.last_error = f"connect refused: {reason}"
            return
        self._delay = self.config.reconnect_min_s
        self.stats.connects += 1
        if self.stats.connects > 1 and not flags.session_present:
            # The broker forgot us (no persistence, or the session expired): what it had queued
            # for us is gone. Say so; the subscription below starts a new session.
            self.stats.sessions_lost += 1
            self.stats.last_error = "the broker had no session for us on reconnect"
            log.error("MQTT broker %s:%s had no session for %s on reconnect: messages queued for the bridge "
                      "while it was away may be lost (is broker persistence on?)", self.config.host,
                      self.config.port, self.config.client_id)
        # re-subscribing is harmless when the session is present and needed when it is not
        _, self._sub_mid = client.subscribe(INGEST_SUBSCRIPTION, options=SubscribeOptions(qos=1, noLocal=True))
        log.info("MQTT bridge connected to %s:%s (session present: %s)", self.config.host, self.config.port,
                 flags.session_present)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list, properties: Any) -> None:
        if mid != self._sub_mid:
            return
        if any(r.is_failure or r.value != 1 for r in reasons):
            self.stats.last_error = f"ingest subscription refused or downgraded: {[str(r) for r in reasons]}"
            log.error("MQTT bridge: %s", self.stats.last_error)
            return
        self._ready.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._ready.clear()
        self._batch.clear()                 # their PUBACKs would belong to a dead connection
        if not self._stop.is_set():
            log.warning("MQTT bridge lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._batch.append((msg.mid, msg.topic, msg.payload))

    # -- ingest
    def _ingest(self) -> None:
        batch, self._batch = self._batch, []
        self.stats.received += len(batch)
        self.stats.batches += 1
        valid = []
        for _, topic, payload in batch:
            m = CREATE_TOPIC.match(topic)
            if m is None:
                continue                    # not a create topic: nothing to store
            try:
                valid.append(self.service.observation_from(payload, int(m.group(1))))
            except SensorError as exc:
                self._reject(topic, exc)
        if valid:
            self._store(valid)
        # only now, after COMMIT; written by the loop, on this connection
        if _RAW and self.client.socket() is not None:
            self.client._packet_queue(_PUBACK_CMD, encode_pubacks([mid for mid, _, _ in batch]), 0, 0)
        else:
            for mid, _, _ in batch:
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

    # -- publishing what was created (hub callback: the loop thread for MQTT ingest, any thread else)
    def _outgoing(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        out: list[tuple[str, bytes]] = []
        if kind == "observations":
            for ds, foi, obs in message["created"]:
                payload = orjson.dumps(obs)
                out.extend((topic, payload) for topic in self._observation_topics(ds, foi, obs["@iot.id"]))
        elif kind == "entity":
            payload = orjson.dumps(message["json"])
            out.extend((topic, payload) for topic in entity_topics(message["set"], message["id"], message["row"],
                                                                   self.config.publish))
        if not out:
            return
        if threading.get_ident() == self._thread_id:
            self._publish(out)
            return
        room = self.config.outbox_max - len(self._outbox)
        if room < len(out):
            self.stats.dropped += len(out) - max(room, 0)
            out = out[:max(room, 0)]
        self._outbox.extend(out)
        self._wake()

    def _flush_outbox(self) -> None:
        out = []
        while self._outbox:
            out.append(self._outbox.popleft())
        if out:
            self._publish(out)

    def _publish(self, out: list[tuple[str, bytes]]) -> None:
        if _RAW and self.config.qos_out == 0:
            if self.client.socket() is None:
                return                      # QoS 0: not connected, not sent
            self.client._packet_queue(_PUBLISH_CMD, b"".join(encode_publish_qos0(t, p) for t, p in out), 0, 0,
                                      mqtt.MQTTMessageInfo(0))   # paho marks it published once written
        else:
            publish, qos = self.client.publish, self.config.qos_out
            for topic, payload in out:
                publish(topic, payload, qos=qos)
        self.stats.published += len(out)

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
