"""The run store as users meet it: a 1000-layer step stored as a live job produces it,
10 000 runs listed, a ~50 MB run exported.

Step storage, side by side: one SQLite row per step (the store; WAL, synchronous NORMAL
and FULL) against an append-only file per run with the index in SQLite (its step count
updated in the same way), and the encoding alone that both need. Export: the store's
row-batch stream against the whole record built in memory and encoded at once (what a
server keeping records in memory does), with the peak memory of each.

    python benchmarks/store.py            # prints markdown tables
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _timing import machine, samples_ms, table
from backproplab.engines import iter_steps, make_engine
from backproplab.model.spec import RunSpec
from backproplab.runs.codec import decode, encode
from backproplab.runs.store import RunStore

CONFIG = {"depth": 999, "width": 8, "activation": "tanh"}


def thousand_layer_step() -> tuple[dict, float]:
    """A real recorded step of a 1000-layer network (999 hidden + output), and the ms
    one training step of it takes (the third, after warm-up), for scale."""
    spec = RunSpec(depth=999, width=8, batch_size=8, steps=3)
    times, steps = [], []
    t0 = time.perf_counter()
    for record in iter_steps(spec, threading.Event(), make_engine(spec)):
        times.append(time.perf_counter() - t0)
        steps.append(record)
        t0 = time.perf_counter()
    return steps[-1], times[-1] * 1e3


class FilePerRun:
    """The alternative: steps appended to one file per run, the index in SQLite."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.index = sqlite3.connect(folder / "index.sqlite3", isolation_level=None)
        self.index.execute("PRAGMA journal_mode=WAL")
        self.index.execute("PRAGMA synchronous=NORMAL")
        self.index.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, step_count INT, bytes INT)")

    def create(self, run_id: str) -> None:
        self.index.execute("INSERT INTO runs VALUES (?, 0, 0)", (run_id,))
        (self.folder / f"{run_id}.jsonl").touch()

    def append(self, run_id: str, body: bytes) -> None:
        with open(self.folder / f"{run_id}.jsonl", "ab") as f:
            f.write(body + b"\n")
        self.index.execute("BEGIN IMMEDIATE")
        self.index.execute("UPDATE runs SET step_count=step_count+1, bytes=bytes+? WHERE id=?",
                           (len(body), run_id))
        self.index.execute("COMMIT")

    def export_chunks(self, run_id: str, head: bytes):
        yield head + b',"steps":['
        with open(self.folder / f"{run_id}.jsonl", "rb") as f:
            for i, line in enumerate(f):
                yield (b"," if i else b"") + line.rstrip(b"\n")
        yield b"]}"


def bench_insert(step: dict, folder: Path) -> tuple[list[list], dict]:
    body = encode(step)
    normal = RunStore(folder / "normal", sync="normal")
    full = RunStore(folder / "full", sync="full")
    memory = RunStore(":memory:")
    files = FilePerRun(Path(tempfile.mkdtemp(dir=folder)))
    ids = {"normal": normal.create(CONFIG, "live"), "full": full.create(CONFIG, "live"),
           "memory": memory.create(CONFIG, "live")}
    files.create("r")
    fns = {
        "encode the step (codec)": lambda: encode(step),
        "store row, WAL NORMAL": lambda: normal.append_encoded(ids["normal"], [(step, body)]),
        "store row, WAL FULL": lambda: full.append_encoded(ids["full"], [(step, body)]),
        "store row, :memory:": lambda: memory.append_encoded(ids["memory"], [(step, body)]),
        "file per run + index": lambda: files.append("r", body),
    }
    samples = samples_ms(fns, repeats=9, min_time=0.05, settle=0.02)
    base = np.asarray(samples["encode the step (codec)"])
    rows = [[name, float(np.median(s)), float(np.median(np.asarray(s) / base))]
            for name, s in samples.items()]
    stores = {"normal": normal, "full": full, "memory": memory, "files": files}
    return rows, {"stores": stores, "ids": ids, "body": body}


def peak_mb(fn) -> tuple[float, float]:
    """(seconds, peak MB of Python allocations) of one call."""
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return elapsed, peak


def bench_export(step: dict, folder: Path, target_mb: float = 50.0) -> tuple[list[list], float]:
    body = encode(step)
    count = max(2, int(target_mb * 2**20 / len(body)))
    store = RunStore(folder / "export")
    run_id = store.create(CONFIG, "live")
    files = FilePerRun(Path(tempfile.mkdtemp(dir=folder)))
    files.create("r")
    for i in range(count):
        s = {**step, "step": i}
        b = encode(s)
        store.append_encoded(run_id, [(s, b)])
        files.append("r", b)
    store.finish(run_id, "done")
    size = sum(len(c) for c in store.export_chunks(run_id)) / 2**20
    head = store._head(run_id)[3]

    def stream_store():
        for _ in store.export_chunks(run_id):
            pass

    def stream_files():
        for _ in files.export_chunks("r", head):
            pass

    def in_memory():  # the whole record as objects, then one encode
        record = decode(b"".join(store.export_chunks(run_id)))
        encode(record)

    rows = []
    for name, fn in (("store: row batches streamed", stream_store),
                     ("file per run: lines streamed", stream_files),
                     ("whole record as objects, encoded at once", in_memory)):
        seconds, peak = peak_mb(fn)
        rows.append([name, seconds * 1e3, size / seconds, peak])
    store.close()
    return rows, size


def bench_list(folder: Path, runs: int = 10_000) -> list[list]:
    store = RunStore(folder / "list")
    small = {"step": 0, "loss": 0.5, "layers": [{"index": 0, "delta_norm": 1.0,
                                                 "grad_w_norm": 1.0}]}
    t0 = time.perf_counter()
    for i in range(runs):
        run_id = store.create({**CONFIG, "seed": i}, "live" if i % 4 else "headless",
                              name=f"sweep {i}" if i % 10 == 0 else None)
        store.append_steps(run_id, [small])
        store.finish(run_id, "done")
    fill = time.perf_counter() - t0
    deep = store.list(limit=1, offset=9_000)[0]["id"]

    def walk_all():
        page = store.list(limit=500)
        seen = len(page)
        while len(page) == 500:
            page = store.list(limit=500, before=page[-1]["id"])
            seen += len(page)
        assert seen == runs

    fns = {"newest 50": lambda: store.list(limit=50),
           "50 before the 9000th (keyset)": lambda: store.list(limit=50, before=deep),
           "50 at offset 9000": lambda: store.list(limit=50, offset=9_000),
           "50 named 'sweep 9…'": lambda: store.list(limit=50, name="sweep 9"),
           "50 headless": lambda: store.list(limit=50, source="headless"),
           "count all": lambda: store.count()}
    medians = {k: float(np.median(v)) for k, v in samples_ms(fns, repeats=7).items()}
    rows = [[name, ms] for name, ms in medians.items()]
    seconds, peak = peak_mb(walk_all)
    rows.append([f"all {runs} in pages of 500 (peak {peak:.1f} MB)", seconds * 1e3])
    rows.append([f"filling: {runs} runs created, stored, finished", fill * 1e3])
    store.close()
    return rows


def main() -> None:
    import torch

    print(f"machine: {machine()}; numpy {np.__version__}, torch {torch.__version__}, "
          f"SQLite {sqlite3.sqlite_version}; {time.strftime('%Y-%m-%d')}\n")
    step, train_ms = thousand_layer_step()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows, _ = bench_insert(step, folder)
        print(f"### One 1000-layer step stored ({len(encode(step)) / 1024:.0f} KiB of JSON; "
              f"training that step took {train_ms:.0f} ms)\n")
        print(table(["how", "ms per step", "ratio to encoding"], rows))
        rows, size = bench_export(step, folder)
        print(f"\n### Exporting a {size:.0f} MB run (1000 layers per step)\n")
        print(table(["how", "ms", "MB/s", "peak MB (Python)"], rows))
        print("\n### Listing, 10 000 runs stored\n")
        print(table(["query", "ms"], bench_list(folder)))
        print(f"\nstore file sizes: {sum(f.stat().st_size for f in folder.rglob('*')) / 2**20:.0f}"
              f" MB in {os.path.basename(tmp)}")


if __name__ == "__main__":
    main()
