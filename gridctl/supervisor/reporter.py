"""The reporter process: apscheduler cron jobs from the YAML `reports:` section."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger("gridctl.reporter")


def run_report(config_path: Path, state_dir: Path, report_name: str) -> None:
    """One scheduled report: write it with gridctl.report.write_report_file; never raise."""
    try:
        from gridctl.config import load
        from gridctl.report import write_report_file
        from gridctl.store.db import open_database

        config = load(config_path, check_markets=False)
        report_cfg = config.reports.get(report_name)
        if report_cfg is None:
            log.error("report %s is no longer in %s; skipped", report_name, config_path)
            return
        db = open_database(state_dir, config.database)
        try:
            path = write_report_file(db, report_cfg, int(time.time() * 1000), state_dir=state_dir)
        finally:
            db.close()
        log.info("report %s written%s", report_name, f" to {path}" if path else "")
    except Exception:  # one failed report must not stop the others
        log.exception("report %s failed", report_name)


def reporter_main(config_path: Path, state_dir: Path, parent_pid: int) -> int:
    """Run the cron jobs until SIGTERM or until the supervisor that forked us is gone.

    The reporter exits with its supervisor (unlike workers): a new supervisor starts
    its own reporter, and two reporters would write every report twice.
    """
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    from gridctl.config import load

    config = load(config_path, check_markets=False)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per orphan check
    logging.getLogger().setLevel(logging.INFO)
    sched = BlockingScheduler()
    for name, rep in config.reports.items():
        sched.add_job(run_report, CronTrigger.from_crontab(rep.cron), args=[config_path, state_dir, name],
                      id=f"report:{name}", name=f"report {name}", coalesce=True, misfire_grace_time=300)
        log.info("report %s scheduled: %s", name, rep.cron)

    def orphan_check() -> None:
        if os.getppid() != parent_pid:
            log.info("supervisor %d is gone; reporter exiting", parent_pid)
            sched.shutdown(wait=False)

    sched.add_job(orphan_check, "interval", seconds=2, id="orphan-check")
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    sched.start()
    return 0
