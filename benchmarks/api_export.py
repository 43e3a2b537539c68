"""Exporting a large run record over HTTP: the route against the bare codec.

A 1000-layer run's record is fetched as users fetch it (GET /api/runs/{id}/export
and GET /api/runs/{id} through the ASGI app) and compared, side by side in one
run, with encoding the same record by `backproplab.runs.codec.encode` alone and
with a round trip through the pydantic RunRecord model (what a response model
that FastAPI serializes itself would cost)."""

from __future__ import annotations

import argparse
import time

from fastapi.testclient import TestClient

from _timing import machine, paired_ratio, samples_ms, table
from backproplab.api.app import create_app
from backproplab.api.records import RunRecord
from backproplab.runs.codec import encode
from backproplab.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    config = {"depth": args.depth, "width": 8, "batch_size": 8, "steps": args.steps,
              "engine": "numpy", "dtype": "float64"}
    with TestClient(create_app(Settings(max_sessions=1))) as client:
        run_id = client.post("/api/runs", json=config).json()["id"]
        while client.get(f"/api/runs/{run_id}").json()["status"] == "running":
            time.sleep(0.2)
        record = client.app.state.manager.store.record(run_id)
        size = len(encode(record))

        def export() -> None:
            assert client.get(f"/api/runs/{run_id}/export").status_code == 200

        def status() -> None:
            assert client.get(f"/api/runs/{run_id}").status_code == 200

        def codec() -> None:
            encode(record)

        def pydantic() -> None:
            RunRecord.model_validate(record).model_dump_json(by_alias=True)

        samples = samples_ms({"export": export, "status": status, "codec": codec,
                              "pydantic": pydantic}, repeats=args.repeats, min_time=0.2)
    med = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    print(f"# api_export — {time.strftime('%Y-%m-%d')} — {machine()}; record of depth "
          f"{args.depth}, {args.steps} steps, {size / 1e6:.2f} MB")
    print(table(["measure", "ms", "/ codec"], [
        ["codec.encode(record)", med["codec"], 1.0],
        ["GET /api/runs/{id}/export", med["export"], paired_ratio(samples, "export", "codec")],
        ["GET /api/runs/{id}", med["status"], paired_ratio(samples, "status", "codec")],
        ["RunRecord validate + dump_json", med["pydantic"],
         paired_ratio(samples, "pydantic", "codec")],
    ]))


if __name__ == "__main__":
    main()
