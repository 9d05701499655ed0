"""The reporter's job writes the scheduled report file a YAML `reports:` entry describes."""

from pathlib import Path

from gridctl.store.db import open_database
from gridctl.supervisor.reporter import run_report
from tests.store_fixture import realistic

EXAMPLE = Path(__file__).resolve().parents[1] / "strategies.yaml.example"


def test_scheduled_report_lands_in_the_state_dir(tmp_path):
    db = open_database(tmp_path)
    realistic(db)
    db.close()
    run_report(EXAMPLE, tmp_path, "daily")
    files = list((tmp_path / "reports").glob("daily-*.csv"))
    assert len(files) == 1
    header, *rows = files[0].read_text().splitlines()
    assert header.startswith("strategy,period,from,to,trades,")
    # realistic() writes sol-neutral and sol-long; the example's daily report covers every strategy
    assert sorted(r.split(",")[0] for r in rows if not r.startswith("total")) == ["sol-long", "sol-neutral"]


def test_a_report_missing_from_the_yaml_writes_nothing(tmp_path):
    open_database(tmp_path).close()
    run_report(EXAMPLE, tmp_path, "weekly")
    assert not (tmp_path / "reports").exists()
