"""Shared fixtures of the sensor tests: a real Mosquitto broker, private brokers, a small network."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
MM = {"name": "millimetre", "symbol": "mm", "definition": "http://qudt.org/vocab/unit/MilliM"}
M = {"name": "metre", "symbol": "m", "definition": "http://qudt.org/vocab/unit/M"}


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    exe = shutil.which("mosquitto") or (os.path.exists("/usr/sbin/mosquitto") and "/usr/sbin/mosquitto")
    if not exe:
        subprocess.run(["apt-get", "install", "-y", "mosquitto"], check=False, capture_output=True, timeout=300)
        exe = shutil.which("mosquitto") or (os.path.exists("/usr/sbin/mosquitto") and "/usr/sbin/mosquitto")
    assert exe, "Mosquitto is not installed and apt-get install mosquitto failed"
    return exe


@pytest.fixture(scope="session")
def broker() -> tuple[str, int]:
    """The shared broker on 127.0.0.1:1883 (started with Debian's config when it is not running)."""
    if not port_open(1883):
        subprocess.run([mosquitto_binary(), "-d", "-c", "/etc/mosquitto/mosquitto.conf"], check=False)
        for _ in range(50):
            if port_open(1883):
                break
            time.sleep(0.1)
    assert port_open(1883), "no MQTT broker on 127.0.0.1:1883 and mosquitto could not be started"
    return "127.0.0.1", 1883


class PrivateBroker:
    """A Mosquitto of our own on a free port, with persistence in a temp folder.

    Mosquitto started as root drops to the `mosquitto` user unless told otherwise, and that user
    cannot write in a private temp folder: persistence then fails silently (only the broker's log
    says "Error saving in-memory database") and a restart forgets every session and every queued
    message. So the broker keeps our user, logs to a file in the folder, and `stop()` checks that
    the database was written.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self.db = folder / "mosquitto.db"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
                             f"persistence true\npersistence_location {folder}/\nautosave_interval 1\n"
                             "max_queued_messages 0\nmax_inflight_messages 0\n"
                             f"log_dest file {self.log}\nlog_type error\nlog_type warning\nlog_type notice\n"
                             "log_type information\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            if port_open(self.port):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"private mosquitto did not start: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker; after SIGTERM its sessions and queues must be on disk."""
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self.proc = None
        if sig == signal.SIGTERM:
            assert self.db.exists() and "Error saving" not in self.log.read_text(errors="replace"), \
                f"mosquitto did not persist its state: {self.log_tail()}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture
def private_broker(tmp_path):
    b = PrivateBroker(tmp_path)
    b.start()
    yield b
    b.stop()


def thing_body(name: str, lon: float, lat: float, streams: list[dict], **props) -> dict:
    return {"name": name, "description": f"{name} description", "properties": props,
            "Locations": [{"name": f"{name} location", "description": "where", "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [lon, lat]}}],
            "Datastreams": streams}


def stream_body(name: str, unit: dict = MM, thresholds: dict | None = None, otype: str = OM) -> dict:
    props = {"twin:thresholds": thresholds} if thresholds else {}
    return {"name": name, "description": f"{name} stream", "observationType": otype, "unitOfMeasurement": unit,
            "properties": props,
            "Sensor": {"name": f"{name} sensor", "description": "s", "encodingType": "text/html", "metadata": "m"},
            "ObservedProperty": {"name": f"{name} property", "definition": f"https://example.org/{name}",
                                 "description": "p"}}


@pytest.fixture
def service(tmp_path):
    from simulate.sensors.service import SensorService

    s = SensorService.for_twin(tmp_path / "twin")
    yield s
    s.close()
