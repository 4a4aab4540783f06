"""NowcastTrigger: runs the flood nowcast through the job manager, on a schedule and on alarms.

    schedule   every `every_s` seconds while any rain gauge reads above zero, if readings came in
               since the last run
    on alarm   when a threshold "alarm" event opens (the sensor hub's event messages)

Runs start from the sensors' clock, not the wall clock: an alarm's run from the reading that opened
it, a scheduled run from the newest reading heard (never later than now). Live, both are about now;
in a storm replay, whose readings carry the storm's own (past) times, the forecast starts where the
storm is.

Debounced: at most one nowcast runs at a time, and runs start at least `min_interval_s` apart; an
alarm that comes while a run is going (or too soon after one) is kept and served by the next run the
interval allows. Each poll also applies the forecast of every nowcast job that finished (its own, and
those run through the Processes API), which opens, updates or closes forecast events.

    trigger = NowcastTrigger(manager, service, every_s=900, on_alarm=True)
    trigger.start()          # a daemon thread polling every `poll_s`
    ...
    trigger.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from simulate.jobs.manager import JobManager
from simulate.jobs.model import Job, JobFailed
from simulate.nowcast.inputs import NowcastInputs
from simulate.nowcast.readings import raining
from simulate.nowcast.warnings import PROCESS_ID, apply_finished, apply_job
from simulate.process import ProcessError
from simulate.sensors.errors import SensorError
from simulate.sensors.model import now_text, parse_time
from simulate.sensors.service import SensorService
from twin.errors import TwinError

log = logging.getLogger("twin.nowcast")


class NowcastTrigger:
    def __init__(self, manager: JobManager, service: SensorService, *, every_s: float | None = None,
                 on_alarm: bool = False, min_interval_s: float = 300.0, inputs: dict[str, Any] | None = None,
                 owner: str = "nowcast", mode: str = "async", poll_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        if every_s is not None and every_s <= 0:
            raise ValueError("every_s must be positive")
        if mode not in ("sync", "async", "auto"):
            raise ValueError(f"mode must be sync, async or auto, not {mode!r}")
        self.manager, self.service = manager, service
        self.every_s, self.on_alarm, self.min_interval_s = every_s, on_alarm, min_interval_s
        self.inputs = dict(inputs or {})
        self.params = NowcastInputs.model_validate(self.inputs)   # fail at start-up, not at the first storm
        self.owner, self.mode, self.poll_s, self.clock = owner, mode, poll_s, clock
        self.submitted: list[str] = []          # job ids, oldest first
        self._job: str | None = None            # the run going on
        self._last_start: float | None = None
        self._pending: str | None = None        # the latest alarm's time, until a run starts
        self._seen_alarms: set[int] = set()
        self._data_time: str | None = None      # the newest reading heard
        self._fresh = False                     # readings heard since the last run
        self._applied: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- life
    def start(self, *, background: bool = True) -> None:
        """Listen to the sensor hub and poll in a daemon thread; `background=False` only listens,
        for a caller that drives `tick()` itself."""
        if PROCESS_ID not in self.manager.registry:
            raise ProcessError(f"the job manager has no '{PROCESS_ID}' process", field="process")
        self._unsubscribe = self.service.hub.subscribe(self._on_hub)
        if not background:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="nowcast-trigger", daemon=True)
        self._thread.start()
        log.info("nowcast trigger: every %s s while raining, on alarm %s, at least %s s apart",
                 self.every_s, self.on_alarm, self.min_interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)      # a synchronous run in progress is left to finish on its own
            self._thread = None

    def request(self, at: str | None = None) -> None:
        """Ask for a run from `at` (ISO; default the newest reading) as soon as the debounce allows."""
        at = at or self._data_time or now_text()
        with self._lock:
            self._pending = max(self._pending or at, at)
        self._wake.set()

    # -- the hub (runs on the ingest thread: only note and wake)
    def _on_hub(self, message: dict[str, Any]) -> None:
        if message.get("type") == "observations":
            times = [item["phenomenonTime"].rsplit("/", 1)[-1] for item in message.get("latest", [])
                     if item.get("phenomenonTime")]
            if times:
                newest = min(max(times), now_text())        # a sensor clock ahead of ours counts as now
                with self._lock:
                    self._data_time = max(self._data_time or newest, newest)
                    self._fresh = True
            return
        if not self.on_alarm or message.get("type") != "event":
            return
        event = message["event"]
        if event.get("kind") != "alarm" or event.get("state") != "open":
            return
        with self._lock:
            if event["id"] in self._seen_alarms:        # an open alarm also reports its new peaks
                return
            self._seen_alarms.add(event["id"])
        self.request(event["opened_at"])

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:          # a broken poll must not end the trigger; the next one retries
                log.exception("nowcast trigger poll failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    # -- one poll
    def tick(self) -> Job | None:
        """Follow the running job, apply finished forecasts, and start a run when one is due; the job
        started (finished already in sync mode), or None."""
        if self._job is not None:
            if self.manager.get(self._job).status.active:
                return None
            self._job = None
        apply_finished(self.service, self.manager.jobs, self._applied)
        due = self._due()
        return None if due is None else self._submit(*due)

    def _due(self) -> tuple[str, str | None] | None:
        """(why, the time the run starts from) when a run is due."""
        now = self.clock()
        if self._last_start is not None and now - self._last_start < self.min_interval_s:
            return None
        with self._lock:
            if self._pending:
                return "alarm", self._pending
            fresh, at = self._fresh, self._data_time
        if self.every_s is None or not fresh or (self._last_start is not None
                                                 and now - self._last_start < self.every_s):
            return None
        try:
            wet = raining(self.service, parse_time(at, "at") if at else datetime.now(timezone.utc),
                          self.params.lookback_s)
        except SensorError:
            log.warning("nowcast trigger: cannot read the rain gauges", exc_info=True)
            return None
        return ("schedule", at) if wet else None

    def _submit(self, reason: str, at: str | None) -> Job | None:
        with self._lock:
            self._pending, self._fresh = None, False
        self._last_start = self.clock()
        inputs = {**self.inputs, "at": at} if at else self.inputs
        try:
            job = self.manager.submit(PROCESS_ID, inputs, self.owner, mode=self.mode)
        except (ProcessError, JobFailed) as exc:            # no recent readings, a failed run: wait for the next
            log.warning("nowcast (%s) not run: %s", reason, exc)
            return None
        except TwinError:
            log.exception("nowcast (%s) could not be submitted", reason)
            return None
        self.submitted.append(job.id)
        log.info("nowcast job %s started (%s, from %s)", job.id, reason, at or "now")
        if job.status.active:
            self._job = job.id
        else:
            self._applied.add(job.id)
            apply_job(self.service, self.manager.jobs, job.id)
        return job
