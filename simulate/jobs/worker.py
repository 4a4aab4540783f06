"""The worker process of an asynchronous job:

    python -m simulate.jobs.worker DIR JOB_ID

It runs the job (`simulate.jobs.runner.run_job`) on the twin in DIR. The manager starts
it in its own session, so it outlives the web server that started it; SIGTERM to its
process group (a dismissal) ends it at once and the dismissing side removes its files.
Its stdout and stderr go to `DIR/jobs/<id>/worker.log`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from simulate.jobs.runner import run_job
from simulate.jobs.store import JobStore


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m simulate.jobs.worker TWIN_DIR JOB_ID", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    twin_dir = Path(args[0])
    run_job(twin_dir, JobStore(twin_dir / "jobs"), args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
