"""`backproplab run` stores headless runs; `backproplab runs list|show|export|rm`."""

import json

import pytest

from backproplab.cli import main
from backproplab.report import compare_flow_figure, compare_loss_figure
from backproplab.runs.compare import compare
from backproplab.runs.store import RunStore
from conftest import strict_loads


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "store"
    monkeypatch.setenv("BACKPROPLAB_DATA_DIR", str(folder))
    return folder


def stored(data_dir):
    store = RunStore(data_dir)
    try:
        return store.list(limit=100)
    finally:
        store.close()


def test_run_is_stored_as_it_trains_and_exports_the_same_bytes(tmp_path, data_dir, capsys):
    out = tmp_path / "run.json"
    assert main(["run", "--depth", "3", "--width", "8", "--steps", "5", "--quiet",
                 "--name", "first", "--out", str(out)]) == 0
    (run,) = stored(data_dir)
    assert f"stored as {run['id']}" in capsys.readouterr().out
    assert run["name"] == "first" and run["source"] == "headless" and run["steps"] == 5
    assert run["status"] == "done"
    record = strict_loads(out.read_text())
    assert run["summary"]["final_loss"] == record["steps"][-1]["loss"]
    exported = tmp_path / "export.json"
    assert main(["runs", "export", run["id"], "-o", str(exported)]) == 0
    assert exported.read_bytes() == out.read_bytes()


def test_no_store_keeps_nothing(tmp_path, data_dir):
    assert main(["run", "--depth", "2", "--width", "4", "--steps", "2", "--quiet", "--no-store",
                 "--out", str(tmp_path / "r.json")]) == 0
    assert stored(data_dir) == []


def test_an_overflowing_headless_run_carries_the_marker(tmp_path, data_dir):
    out = tmp_path / "r.json"
    assert main(["run", "--depth", "300", "--width", "32", "--init", "normal", "--sigma-w", "20",
                 "--steps", "3", "--batch-size", "8", "--quiet", "--out", str(out)]) == 0
    record = strict_loads(out.read_text())
    marked = [s for s in record["steps"] if "overflow" in s]
    assert len(marked) == 1
    (run,) = stored(data_dir)
    assert run["summary"]["first_nonfinite"] == marked[0]["overflow"]


def test_runs_list_show_rm(tmp_path, data_dir, capsys):
    for depth in (2, 3):
        main(["run", "--depth", str(depth), "--width", "4", "--steps", "2", "--quiet",
              "--out", str(tmp_path / "r.json")])
    runs = stored(data_dir)
    capsys.readouterr()
    assert main(["runs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["id", "name", "source", "status", "steps"]
    assert [line.split()[0] for line in lines[1:3]] == [r["id"] for r in runs]  # newest first
    assert lines[-1].startswith("2 of 2 runs in ")
    assert main(["runs", "list", "--json", "--limit", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert strict_loads(line)["id"] == runs[0]["id"]
    assert strict_loads(line)["summary"]["final_loss"] == runs[0]["summary"]["final_loss"]
    assert main(["runs", "show", runs[0]["id"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["depth"] == 3 and shown["steps"] == 2
    assert main(["runs", "rm", runs[0]["id"]]) == 0
    assert [r["id"] for r in stored(data_dir)] == [runs[1]["id"]]
    assert main(["runs", "rm", "nope"]) == 1
    assert "no stored run 'nope'" in capsys.readouterr().err
    assert main(["runs", "export"]) == 2


def test_the_compare_report_draws_the_stored_numbers(tmp_path, data_dir):
    for init in ("xavier_normal", "he_normal"):
        main(["run", "--depth", "4", "--width", "8", "--steps", "3", "--activation", "relu",
              "--init", init, "--quiet", "--out", str(tmp_path / f"{init}.json")])
    store = RunStore(data_dir)
    runs = store.list()
    comparison = compare(store, [r["id"] for r in runs])
    flow, loss = compare_flow_figure(comparison), compare_loss_figure(comparison)
    for i, run in enumerate(runs):
        record = store.record(run["id"])
        assert list(flow.data[i].y) == [layer["delta_norm"] for layer in
                                        record["steps"][-1]["layers"]]
        assert list(loss.data[i].y) == [s["loss"] for s in record["steps"]]
    store.close()


def test_a_store_that_cannot_be_opened_is_said_in_words(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "not-a-db"
    bad.mkdir()
    (bad / "runs.sqlite3").write_bytes(b"this is not an SQLite database, not at all" * 100)
    monkeypatch.setenv("BACKPROPLAB_DATA_DIR", str(bad))
    assert main(["runs", "list"]) == 2
    err = capsys.readouterr().err
    assert f"cannot open the run store in {bad}" in err and "BACKPROPLAB_DATA_DIR" in err
    assert "Traceback" not in err
