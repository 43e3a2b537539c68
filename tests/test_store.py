"""The run store: strict JSON round-trips, pagination, pruning, concurrent writers,
interrupted runs, restarts."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from backproplab.engines import run as train
from backproplab.model.spec import RunSpec
from backproplab.runs.codec import encode
from backproplab.runs.compare import compare, config_fields
from backproplab.runs.store import EXPORT_BATCH_BYTES, NotFound, RunStore, config_hash
from conftest import strict_loads

CONFIG = {"depth": 2, "width": 3, "activation": "tanh", "record": {"every": 1}}


def layer(index, delta, grad=1.0, kind="hidden"):
    return {"index": index, "kind": kind, "delta_norm": delta, "grad_w_norm": grad,
            "z_mean": 0.0, "a_std": 1.0}


def step(n, loss, deltas, **extra):
    return {"step": n, "loss": loss, "accuracy": None, "time_s": 0.01 * n,
            "layers": [layer(i, d) for i, d in enumerate(deltas)], **extra}


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    s = RunStore(":memory:" if request.param == "memory" else tmp_path)
    yield s
    s.close()


def test_nonfinite_values_and_the_overflow_marker_round_trip(store):
    steps = [step(0, 0.5, [1.0, 2.0, 3.0]),
             step(1, math.inf, [math.nan, math.inf, 4.0],
                  overflow={"step": 1, "layer": 0}),
             step(2, math.nan, [-math.inf, 1e308, 5e-324])]
    run_id = store.create(CONFIG, "live", environment={"numpy": "x"})
    for s in steps:
        store.append_steps(run_id, [s])
    store.finish(run_id, "done", theory={"chi1": math.inf, "q_star": math.nan})
    exported = b"".join(store.export_chunks(run_id))
    expected = {"schema": "backproplab.run/1", "config": CONFIG,
                "environment": {"numpy": "x"}, "theory": {"chi1": math.inf, "q_star": math.nan},
                "steps": steps}
    assert exported == encode(expected)  # the export writes exactly the codec's bytes
    parsed = strict_loads(exported.decode())  # no bare NaN/Infinity tokens
    assert parsed["steps"][1]["layers"][0]["delta_norm"] == "NaN"
    assert parsed["steps"][1]["layers"][1]["delta_norm"] == "Infinity"
    assert parsed["steps"][2]["layers"][0]["delta_norm"] == "-Infinity"
    assert parsed["steps"][1]["overflow"] == {"step": 1, "layer": 0}
    assert "overflow" not in parsed["steps"][0]
    back = store.record(run_id)
    assert math.isnan(back["steps"][2]["loss"]) and back["steps"][1]["loss"] == math.inf
    assert back["steps"][2]["layers"][1]["delta_norm"] == 1e308
    assert back["steps"][2]["layers"][2]["delta_norm"] == 5e-324
    assert math.isnan(back["theory"]["q_star"])
    entry = store.get(run_id)
    assert entry["status"] == "done" and entry["steps"] == 3
    assert entry["summary"]["first_nonfinite"] == {"step": 1, "layer": 0}
    assert math.isnan(entry["summary"]["final_loss"]) and entry["summary"]["min_loss"] == 0.5
    assert entry["summary"]["delta_first"] == -math.inf


def test_first_nonfinite_is_found_without_a_marker(store):
    run_id = store.create(CONFIG, "imported")
    store.append_steps(run_id, [step(0, 1.0, [1.0, 1.0]), step(5, 2.0, [1.0, math.nan]),
                                step(6, 3.0, [math.inf, 1.0])])
    summary = store.get(run_id)["summary"]
    assert summary["first_nonfinite"] == {"step": 5, "layer": 1}
    assert summary["final_loss"] == 3.0 and summary["final_step"] == 6


def test_a_real_run_exports_the_same_bytes_as_the_codec(store):
    record = train(RunSpec(depth=3, width=8, steps=4, batch_size=8))
    run_id = store.put_record(record)
    assert b"".join(store.export_chunks(run_id)) == encode(record)
    assert store.get(run_id)["summary"]["final_loss"] == record["steps"][-1]["loss"]
    last = store.last_step(run_id)
    assert last["layers"][2]["delta_norm"] == record["steps"][-1]["layers"][2]["delta_norm"]


def test_listing_is_newest_first_with_stable_pages_and_filters(store):
    ids = [store.create({**CONFIG, "seed": i}, "live" if i % 3 else "headless",
                        name=f"run_{i}%" if i % 2 else None) for i in range(25)]
    newest_first = ids[::-1]
    page1 = store.list(limit=10)
    assert [r["id"] for r in page1] == newest_first[:10]
    store.create(CONFIG, "live")  # a new run does not shift the next page
    page2 = store.list(limit=10, before=page1[-1]["id"])
    assert [r["id"] for r in page2] == newest_first[10:20]
    assert [r["id"] for r in store.list(limit=5, offset=1)] == [ids[24], ids[23], ids[22],
                                                                 ids[21], ids[20]]
    headless = store.list(source="headless", limit=100)
    assert [r["id"] for r in headless] == [ids[i] for i in range(24, -1, -1) if i % 3 == 0]
    assert store.count(source="headless") == 9
    # a part of the name, whatever the case; "%" and "_" are matched literally
    assert [r["id"] for r in store.list(name="UN_1")] == [ids[19], ids[17], ids[15],
                                                          ids[13], ids[11], ids[1]]
    assert [r["id"] for r in store.list(name="1%")] == [ids[21], ids[11], ids[1]]
    assert store.list(name="n%") == [] and store.count(name="n_") == 12
    with pytest.raises(NotFound):
        store.list(before="no-such-run")


def test_offset_pages_cover_every_run_once(store):
    ids = [store.create(CONFIG, "live") for _ in range(23)]
    seen = []
    for offset in range(0, 30, 7):
        seen += [r["id"] for r in store.list(limit=7, offset=offset)]
    assert seen == ids[::-1]


def test_pruning_deletes_the_oldest_unnamed_runs_and_keeps_named_ones(tmp_path):
    store = RunStore(tmp_path)
    sizes = {}

    def add(name=None, finish=True, layers=200):
        run_id = store.create(CONFIG, "live", name=name)
        store.append_steps(run_id, [step(i, 1.0, [1.0] * layers) for i in range(3)])
        if finish:
            store.finish(run_id, "done")
        sizes[run_id] = store.get(run_id)["bytes"]
        return run_id

    a_named, b, c, d_running, e, f = (add("keep me"), add(), add(), add(finish=False), add(),
                                      add())
    total = store.total_bytes()
    assert total == sum(sizes.values())
    store.max_bytes = total - sizes[b] - sizes[c] // 2  # needs b and c to go, in that order
    assert store.prune() == [b, c]
    left = {r["id"] for r in store.list()}
    assert left == {a_named, d_running, e, f}
    assert store.total_bytes() == total - sizes[b] - sizes[c] <= store.max_bytes
    # far over the cap: every unnamed finished run but the newest goes; named and running stay
    store.max_bytes = 1
    assert store.prune() == [e]
    assert {r["id"] for r in store.list()} == {a_named, d_running, f}
    with pytest.raises(NotFound):
        store.get(b)
    store.close()


def test_the_cap_is_kept_while_steps_are_written(tmp_path):
    store = RunStore(tmp_path, max_bytes=2 * 1024 * 1024)
    old = [store.create(CONFIG, "live") for _ in range(3)]
    for run_id in old:
        store.append_steps(run_id, [step(i, 1.0, [1.0] * 1000) for i in range(10)])
        store.finish(run_id, "done")
    assert 0.8 * 1024 * 1024 < store.get(old[1])["bytes"] < 1024 * 1024  # two fit, not three
    assert [r["id"] for r in store.list()] == [old[2], old[1]]  # the oldest went first
    assert store.total_bytes() <= 2 * 1024 * 1024
    store.close()


def test_concurrent_writers_and_an_import_interleave_without_loss(tmp_path):
    store = RunStore(tmp_path)
    writers, per_writer = 4, 40
    record = train(RunSpec(depth=4, width=8, steps=30, batch_size=8))
    ids: dict[int, str] = {}
    errors = []
    latencies = []
    done = threading.Event()

    def write(k):
        try:
            run_id = ids[k] = store.create({**CONFIG, "seed": k}, "live")
            for i in range(per_writer):
                store.append_steps(run_id, [step(i, float(k * 1000 + i), [k, i, 1.0])])
            store.finish(run_id, "done")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read():
        while not done.is_set():
            t0 = time.perf_counter()
            store.list(limit=20)
            latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    imported = store.put_record(record)
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert errors == []
    for k, run_id in ids.items():
        stored = store.record(run_id)
        assert [s["loss"] for s in stored["steps"]] == [float(k * 1000 + i)
                                                        for i in range(per_writer)]
        assert store.get(run_id)["steps"] == per_writer
    assert b"".join(store.export_chunks(imported)) == encode(record)
    assert len(latencies) > 0 and sorted(latencies)[len(latencies) // 2] < 0.05
    check = sqlite3.connect(tmp_path / "runs.sqlite3")
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT count(*) FROM steps").fetchone()[0] == \
        writers * per_writer + len(record["steps"])
    check.close()
    store.close()


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from backproplab.runs.store import RunStore
    store = RunStore(sys.argv[1])
    done = store.create({"depth": 1}, "headless")
    store.append_steps(done, [{"step": 0, "loss": 1.0, "layers": []}])
    store.finish(done, "done")
    run_id = store.create({"depth": 2}, "live")
    for i in range(3):
        store.append_steps(run_id, [{"step": i, "loss": float(i), "layers": []}])
    print(run_id, done, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_killed_writer_leaves_an_interrupted_run_with_its_steps(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    run_id, done = proc.stdout.split()
    check = sqlite3.connect(tmp_path / "runs.sqlite3")
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    store = RunStore(tmp_path)
    assert store.interrupted == 1
    entry = store.get(run_id)
    assert entry["status"] == "interrupted" and entry["steps"] == 3
    assert "ended before it finished" in entry["error"]
    assert [s["loss"] for s in store.record(run_id)["steps"]] == [0.0, 1.0, 2.0]
    assert store.get(done)["status"] == "done"
    store.close()


def test_runs_of_a_live_process_are_not_marked_but_an_earlier_life_of_this_pid_is(tmp_path):
    first = RunStore(tmp_path)
    mine = first.create(CONFIG, "live")
    reused = first.create(CONFIG, "live")
    with first._transaction() as conn:  # as if written by an earlier process with our pid
        conn.execute("UPDATE runs SET owner=? WHERE id=?",
                     (f"{os.uname().nodename}:{os.getpid()}:0000dead", reused))
    second = RunStore(tmp_path)  # e.g. the CLI opening the store while the server runs
    assert second.get(mine)["status"] == "running"
    assert second.get(reused)["status"] == "interrupted"
    second.close()
    first.close()


def test_everything_survives_a_restart(tmp_path):
    store = RunStore(tmp_path)
    record = train(RunSpec(depth=2, width=4, steps=3, batch_size=4))
    a = store.put_record(record, name="kept")
    b = store.create(CONFIG, "live")
    store.append_steps(b, [step(0, 1.0, [1.0])])
    store.finish(b, "stopped")
    store.rename(b, note="a note")
    before = {r["id"]: r for r in store.list()}
    store.close()
    again = RunStore(tmp_path)
    assert {r["id"]: r for r in again.list()} == before
    assert b"".join(again.export_chunks(a)) == encode(record)
    assert again.get(b)["note"] == "a note" and again.get(a)["name"] == "kept"
    again.close()


def test_memory_mode_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = RunStore(":memory:")
    run_id = store.create(CONFIG, "live")
    store.append_steps(run_id, [step(0, 1.0, [1.0])])
    assert store.path is None and list(tmp_path.iterdir()) == []
    store.close()


def test_rename_delete_and_bad_input(store):
    run_id = store.create(CONFIG, "live")
    assert store.rename(run_id, name="He init")["name"] == "He init"
    assert store.rename(run_id, note="")["note"] is None
    assert store.rename(run_id, name=None)["name"] is None
    store.delete(run_id)
    for call in (lambda: store.get(run_id), lambda: store.delete(run_id),
                 lambda: store.rename(run_id, name="x"),
                 lambda: store.append_steps(run_id, [step(0, 1.0, [1.0])])):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(ValueError, match="source"):
        store.create(CONFIG, "somewhere")


def test_config_hash_ignores_key_order_and_sees_values():
    assert config_hash({"a": 1, "b": {"c": 2}}) == config_hash({"b": {"c": 2}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_briefs_are_evenly_thinned_keeping_first_last_and_the_overflow_step(store):
    run_id = store.create(CONFIG, "live")
    steps = [step(i, float(i), [1.0, 2.0]) for i in range(1000)]
    steps[333] = step(333, 1.0, [math.nan, 2.0], overflow={"step": 333, "layer": 0})
    store.append_steps(run_id, steps)
    briefs = store.briefs(run_id, points=100)
    numbers = [b["step"] for b in briefs]
    assert numbers[0] == 0 and numbers[-1] == 999 and 333 in numbers
    assert numbers == sorted(numbers) and 100 <= len(numbers) <= 102
    assert numbers[1] - numbers[0] == 10  # ceil(1000 / 100)
    b333 = next(b for b in briefs if b["step"] == 333)
    assert math.isnan(b333["delta"][0]) and b333["delta"][1] == 2.0


def test_compare_lists_differing_config_fields_with_their_values(store):
    a = store.create({**CONFIG, "init": "xavier_normal"}, "live")
    b = store.create({**CONFIG, "init": "he_normal", "record": {"every": 2}}, "live")
    for run_id, scale in ((a, 1.0), (b, 10.0)):
        store.append_steps(run_id, [step(i, 1.0 / (i + 1), [scale, scale * 2]) for i in range(5)])
    out = compare(store, [a, b], points=3)
    differing = {f["field"]: f["values"] for f in out["fields"] if f["differs"]}
    assert differing == {"init": ["xavier_normal", "he_normal"], "record.every": [1, 2]}
    assert out["fields"][0]["differs"] and not out["fields"][-1]["differs"]
    assert out["runs"][1]["last"]["delta_norm"] == [10.0, 20.0]
    assert out["runs"][0]["series"]["step"] == [0, 2, 4]
    assert out["runs"][0]["series"]["loss"] == [1.0, 1 / 3, 1 / 5]
    assert config_fields([{"a": 1}, {}]) == [{"field": "a", "values": [1, None],
                                              "differs": True}]


def test_short_lived_threads_do_not_pile_up_connections(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG, "live")
    for _ in range(50):  # like job threads, one after the other
        t = threading.Thread(target=lambda: store.get(run_id))
        t.start()
        t.join()
    assert len(store._readers) == 1
    store.close()


def test_ten_thousand_runs_list_in_pages_in_bounded_memory(tmp_path):
    import tracemalloc

    store = RunStore(tmp_path)
    config = encode(CONFIG)
    with store._transaction() as conn:  # 10 000 index rows at once (create() is per run)
        conn.executemany(
            "INSERT INTO runs (id, created, updated, source, schema, config, config_hash, "
            "status, step_count, bytes, summary, environment, theory) "
            "VALUES (?, ?, ?, 'live', 'backproplab.run/1', ?, 'h', 'done', 1, 100, ?, "
            "'null', 'null')",
            [(f"run{i:05d}", i, i, config, encode({"final_loss": i / 10})) for i in range(10_000)])
    t0 = time.perf_counter()
    newest = store.list(limit=50)
    first_page = time.perf_counter() - t0
    assert [r["id"] for r in newest] == [f"run{i:05d}" for i in range(9_999, 9_949, -1)]
    assert newest[0]["summary"]["final_loss"] == 999.9
    assert first_page < 0.25  # ~1 ms on an idle machine (benchmarks/store.py)
    tracemalloc.start()
    seen, page = 0, store.list(limit=500)
    while page:
        seen += len(page)
        page = store.list(limit=500, before=page[-1]["id"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seen == 10_000 and store.count() == 10_000
    assert peak < 8 * 2**20  # a page at a time, never the whole index
    store.close()


def test_a_large_export_streams_in_bounded_memory(tmp_path):
    import tracemalloc

    store = RunStore(tmp_path)
    wide = step(0, 0.5, [0.1 * (i + 1) for i in range(1000)])
    for layer_record in wide["layers"]:  # a step about as large as a real 1000-layer one
        layer_record["delta_sample"] = [0.123456789] * 64
    run_id = store.create(CONFIG, "live")
    bodies = []
    for i in range(24):
        s = {**wide, "step": i}
        bodies.append(encode(s))
        store.append_encoded(run_id, [(s, bodies[-1])])
    store.finish(run_id, "done")
    size = sum(len(b) for b in bodies)
    assert size > 20 * 2**20
    tracemalloc.start()
    total, pieces = 0, 0
    for chunk in store.export_chunks(run_id):
        total += len(chunk)
        pieces += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pieces == 24 + 2 and total == size + 23 + len(store._head(run_id)[3]) + 12
    # a batch of rows (EXPORT_BATCH_BYTES) at a time, never the whole run
    assert peak < 2 * EXPORT_BATCH_BYTES + 2**20 < size / 2
    store.close()


def test_a_prepared_record_is_stored_as_put_record_stores_it(store):
    from backproplab.runs.store import prepare_record

    record = train(RunSpec(depth=3, width=8, steps=7, batch_size=8))
    record["steps"][3]["loss"] = math.nan
    a = store.put_record(record)
    b = store.put_prepared(prepare_record(record), name="prepared")
    assert b"".join(store.export_chunks(b)) == b"".join(store.export_chunks(a)) == \
        encode(record)
    entry_a, entry_b = store.get(a), store.get(b)
    assert entry_b["steps"] == 7 and entry_b["bytes"] == entry_a["bytes"]
    assert entry_b["summary"]["min_loss"] == entry_a["summary"]["min_loss"]
    assert entry_b["summary"]["final_loss"] == record["steps"][-1]["loss"]
    assert store.briefs(b, 3) == store.briefs(a, 3)


def test_figures_of_layers_without_some_fields():
    from backproplab.runs.figures import fold_summary

    step_record = {"step": 4, "loss": 0.25, "layers": [
        {"name": "relu", "delta_norm": 1.0},  # no weights: no ∇W, not a non-finite value
        {"name": "fc", "delta_norm": 2.0, "grad_w_norm": math.inf}]}
    summary = fold_summary({}, step_record)
    assert summary["first_nonfinite"] == {"step": 4, "layer": 1}
    assert summary["delta_first"] == 1.0 and summary["delta_last"] == 2.0
    assert fold_summary({}, {**step_record, "layers": step_record["layers"][:1]}) \
        .get("first_nonfinite") is None
