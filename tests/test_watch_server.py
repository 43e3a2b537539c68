"""Watched runs in the server: pushing needs the secret the server wrote at start;
a live push lists and follows; a server that goes away costs the training nothing;
the JSON-lines file of a killed script imports and reports; the numeric layer runs
without web packages."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.runs.jsonl import RecordFormatError, parse_record
from backproplab.settings import Settings
from conftest import make_server, strict_loads

torch = pytest.importorskip("torch")
import backproplab  # noqa: E402
from backproplab.watch.secret import HEADER, ensure_secret, read_secret  # noqa: E402


@pytest.fixture
def secret_file(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "watch-secret"
    monkeypatch.setenv("BACKPROPLAB_WATCH_SECRET_FILE", str(path))
    return path


def tiny():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def train(w, m, steps, blow_up_at=None):
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    records = []
    for step in range(steps):
        loss = m(torch.randn(8, 4, generator=g)).pow(2).mean()
        if step == blow_up_at:
            loss = loss * math.inf
        loss.backward()
        opt.step()
        records.append(w.step(loss))
        opt.zero_grad()
    return records


def head_and_step(tmp_path):
    path = tmp_path / "run.jsonl"
    m = tiny()
    with backproplab.watch(m, out=path) as w:
        train(w, m, 1)
    lines = path.read_bytes().splitlines()
    return json.loads(lines[0]), json.loads(lines[1])


def test_the_server_writes_a_private_secret_once(secret_file):
    create_app(Settings())
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    first = read_secret()
    create_app(Settings())
    assert read_secret() == first and len(first) >= 40  # kept for running scripts
    secret_file.chmod(0o644)  # readable by others: no longer a secret, replaced
    assert ensure_secret() != first
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_pushing_without_the_secret_is_refused(secret_file, tmp_path):
    client = TestClient(create_app(Settings()))
    head, step = head_and_step(tmp_path)
    for headers in ({}, {HEADER: "not-the-secret"}):
        r = client.post("/api/watch/runs", json=head, headers=headers)
        assert r.status_code == 403
        assert "secret" in r.json()["detail"]
    assert client.get("/api/watch/runs").json() == {"runs": []}
    good = {HEADER: read_secret()}
    r = client.post("/api/watch/runs", json=head, headers=good)
    assert r.status_code == 201
    run_id = r.json()["id"]
    assert client.post(f"/api/watch/runs/{run_id}/steps", json={"steps": [step]}).status_code \
        == 403
    r = client.post(f"/api/watch/runs/{run_id}/steps", json={"steps": [step]}, headers=good)
    assert r.status_code == 200 and r.json()["steps"] == 1
    bad = {**step, "layers": step["layers"][:-1]}
    r = client.post(f"/api/watch/runs/{run_id}/steps", json={"steps": [bad]}, headers=good)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-3:] == ["steps", 0, "layers"]
    # strict JSON, as every other body: NaN travels as "NaN", never as a bare token
    from backproplab.runs.codec import encode
    line = encode(step)
    for token in (b"NaN", b"Infinity", b"1e400"):
        body = b'{"steps":[' + line[:-1] + b',"extra":' + token + b"}]}"
        r = client.post(f"/api/watch/runs/{run_id}/steps", content=body,
                        headers={**good, "content-type": "application/json"})
        assert r.status_code == 422, r.text
        (error,) = r.json()["detail"]
        assert error["type"] == "json_invalid" and error["loc"] == ["body", body.index(token)]
    assert client.get(f"/api/watch/runs/{run_id}").json()["steps"][-1]["step"] == step["step"]
    # numbers beyond what JSON carries exactly: a 422 naming the field, not a 500
    r = client.post(f"/api/watch/runs/{run_id}/steps", json={"steps": [{**step, "step": 2**63}]},
                    headers=good)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "step", r.text
    r = client.get(f"/api/watch/runs/{run_id}", params={"after": 2**63})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "after"], r.text
    # the secret is checked before the body is read: garbage without it is a 403
    r = client.post(f"/api/watch/runs/{run_id}/steps", content=b"{not json",
                    headers={"content-type": "application/json"})
    assert r.status_code == 403


def test_watch_without_a_secret_says_to_start_the_server(secret_file):
    with pytest.raises(ValueError, match="start `backproplab serve` first"):
        backproplab.watch(tiny(), server="http://127.0.0.1:9")


def test_a_live_push_is_listed_and_followed_step_by_step(secret_file, tmp_path):
    with make_server() as server:
        m = tiny()
        with backproplab.watch(m, server=server.url, name="tiny net", every=2,
                               out=tmp_path / "run.jsonl") as w:
            records = [r for r in train(w, m, 7, blow_up_at=5) if r]
            deadline = time.time() + 10
            while w.pusher.sent < len(records) and time.time() < deadline:
                time.sleep(0.05)
            listed = httpx.get(f"{server.url}/api/watch/runs").json()["runs"]
            assert listed[0]["status"] == "live" and listed[0]["name"] == "tiny net"
        runs = httpx.get(f"{server.url}/api/watch/runs").json()["runs"]
        assert len(runs) == 1 and runs[0]["status"] == "finished"
        assert runs[0]["steps"] == 4 and runs[0]["modules"] == 3
        assert runs[0]["first_nonfinite"] == {"step": 5, "module": None, "in": "forward",
                                              "what": "loss"}
        r = httpx.get(f"{server.url}/api/watch/runs/{runs[0]['id']}", params={"after": 2})
        body = strict_loads(r.text)
        assert [s["step"] for s in body["steps"]] == [4, 6]
        pushed = {s["step"]: s for s in body["steps"]}
        for rec in records[2:]:
            for mine, theirs in zip(rec["layers"], pushed[rec["step"]]["layers"], strict=True):
                assert mine["name"] == theirs["name"]
                got = theirs["delta_norm"]
                assert (got == "NaN" and math.isnan(mine["delta_norm"])) or \
                    got == mine["delta_norm"]
        export = strict_loads(httpx.get(f"{server.url}/api/watch/runs/{runs[0]['id']}"
                                        "/export").text)
        assert len(export["steps"]) == 4
        # the Runs list (the run store) has it by the name watch() gave, and finds it by it
        stored = httpx.get(f"{server.url}/api/runs", params={"name": "tiny"}).json()["runs"]
        assert [(r["id"], r["name"]) for r in stored] == [(runs[0]["id"], "tiny net")]
        with backproplab.watch(m, server=server.url) as w:  # no name: the class name,
            train(w, m, 1)  # shown on the Watch page, and the stored run unnamed
        deadline = time.time() + 10
        while len(httpx.get(f"{server.url}/api/runs").json()["runs"]) < 2 and \
                time.time() < deadline:
            time.sleep(0.05)
        unnamed = [r for r in httpx.get(f"{server.url}/api/runs").json()["runs"]
                   if r["id"] != runs[0]["id"]]
        assert len(unnamed) == 1 and unnamed[0]["name"] is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_goes_away_costs_the_training_nothing(tmp_path, capfd):
    path = tmp_path / "run.jsonl"
    m = tiny()
    start = time.perf_counter()
    with backproplab.watch(m, server=f"http://127.0.0.1:{free_port()}", secret="s",
                           out=path) as w:
        train(w, m, 20)
    assert time.perf_counter() - start < 15
    assert len(parse_record(path.read_bytes())["steps"]) == 20
    err = capfd.readouterr().err
    assert err.count("cannot push") == 1 and "the out file stays complete" in err


SCRIPT = textwrap.dedent("""
    import sys, torch, backproplab
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    w = backproplab.watch(m, out=sys.argv[1])
    step = 0
    while True:  # until killed
        loss = m(torch.randn(8, 4)).pow(2).mean()
        loss.backward(); opt.step(); w.step(loss); opt.zero_grad()
        step += 1
""")


def test_a_killed_scripts_file_imports_and_reports(tmp_path, secret_file):
    path = tmp_path / "run.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if path.exists() and path.read_bytes().count(b"\n") >= 6:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    data = path.read_bytes()
    whole = data.count(b"\n") - 1  # lines after the head that are complete
    assert whole >= 5
    record = parse_record(data)
    assert [s["step"] for s in record["steps"]] == list(range(whole))
    assert record["first_nonfinite"] is None
    client = TestClient(create_app(Settings()))
    r = client.post("/api/runs/import", content=data,
                    headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    imported = strict_loads(r.text)
    assert len(imported["steps"]) == whole
    assert imported["config"]["source"] == "watched"
    # cut in the middle of a line, as a kill during a write leaves it
    r = client.post("/api/runs/import", content=data + b'{"step": 99, "lo')
    assert r.status_code == 200 and len(r.json()["steps"]) == whole
    html = tmp_path / "report.html"
    cli = subprocess.run([sys.executable, "-m", "backproplab.cli", "report", str(path), "-o",
                          str(html)], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "Gradient flow" in html.read_text()


def test_import_names_what_is_wrong_with_a_file(tmp_path, secret_file):
    client = TestClient(create_app(Settings()))
    r = client.post("/api/runs/import", content=b'{"schema": "backproplab.run/1"}\nnot json\n{}')
    assert r.status_code == 422 and "line 2 is not JSON" in r.json()["detail"][0]["msg"]
    with pytest.raises(RecordFormatError, match="no \"schema\""):
        parse_record(b'{"step": 0}\n{"step": 1}\n')
    head, step = head_and_step(tmp_path)
    record = {**head, "steps": [step, {**step, "layers": step["layers"][1:]}]}
    r = client.post("/api/runs/import", json=record)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-3:] == ["steps", 1, "layers"]
    ok = client.post("/api/runs/import", json={**head, "steps": [step]})
    assert ok.status_code == 200 and ok.json()["steps"][0]["layers"][1]["name"] == "1"


ISOLATED = textwrap.dedent(r"""
    import importlib.abc, sys
    BLOCKED = set(sys.argv[1].split(","))
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked: {name}")
    sys.meta_path.insert(0, Block())
    import backproplab
    if "torch" in BLOCKED:
        try:
            backproplab.watch(object())
        except ImportError as exc:
            print("no torch:", exc)
        sys.exit(0)
    import torch
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with backproplab.watch(m, out=sys.argv[2]) as w:
        for _ in range(3):
            m(torch.randn(5, 3)).sum().backward(); w.step(); m.zero_grad()
    print("watched without web packages")
""")
WEB = "fastapi,starlette,pydantic,pydantic_core,pydantic_settings,uvicorn,plotly,orjson,httpx"


def test_watch_imports_no_web_package_and_backproplab_needs_no_torch(tmp_path):
    out = tmp_path / "run.jsonl"
    proc = subprocess.run([sys.executable, "-c", ISOLATED, WEB, str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "watched without web packages" in proc.stdout
    assert len(parse_record(out.read_bytes())["steps"]) == 3  # written by the stdlib encoder
    proc = subprocess.run([sys.executable, "-c", ISOLATED, "torch", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no torch: blocked: torch" in proc.stdout


def same(mine, theirs) -> bool:
    """A step as the watcher returned it and as the server gives it back: every value
    equal (NaN to NaN), the fields the watcher left out null there."""
    if isinstance(mine, dict):
        return isinstance(theirs, dict) and all(same(v, theirs.get(k)) for k, v in mine.items()) \
            and all(theirs[k] is None for k in theirs.keys() - mine.keys())
    if isinstance(mine, list):
        return len(mine) == len(theirs) and all(map(same, mine, theirs))
    if isinstance(mine, float) and not math.isfinite(mine):  # strict JSON's words
        return theirs == ("NaN" if math.isnan(mine) else "Infinity" if mine > 0
                          else "-Infinity")
    return mine == theirs


def wait_sent(w, count):
    deadline = time.time() + 20
    while w.pusher.sent < count and time.time() < deadline:
        time.sleep(0.05)
    assert w.pusher.sent == count


def test_a_pushed_run_survives_the_server_killed_and_restarted(tmp_path, secret_file):
    from test_store_server import Served

    data = tmp_path / "store"
    server = Served(data)
    try:
        m = tiny()
        with backproplab.watch(m, server=server.url, name="kept") as w:
            kept = [r for r in train(w, m, 5, blow_up_at=4) if r]
            wait_sent(w, 5)
        m2 = tiny()
        cut = backproplab.watch(m2, server=server.url, name="cut")
        pushed = train(cut, m2, 3)
        wait_sent(cut, 3)
        cut_id = cut.pusher.run_id
    finally:
        server.stop(signal.SIGKILL)  # nothing after the last answered push is owed
    cut.close()  # the server is gone: the end is not delivered
    server = Served(data)
    try:
        client = server.client
        runs = client.get("/api/watch/runs").json()["runs"]
        assert [(r["name"], r["status"], r["steps"]) for r in runs] == \
            [("cut", "interrupted", 3), ("kept", "finished", 5)]
        assert runs[1]["first_nonfinite"] == w.first_nonfinite
        assert w.first_nonfinite == {"step": 4, "module": "2", "in": "backward", "what": "delta"}
        for run, records in ((runs[1], kept), (runs[0], pushed)):
            body = strict_loads(client.get(f"/api/watch/runs/{run['id']}").text)
            assert len(body["steps"]) == len(records)
            assert all(map(same, records, body["steps"]))
            # the Runs page's routes have it as any stored run
            record = strict_loads(client.get(f"/api/runs/{run['id']}").text)["record"]
            assert record["config"]["source"] == "watched" and record["theory"] is None
            assert all(map(same, records, record["steps"]))
        assert {r["id"] for r in client.get("/api/runs", params={"source": "watched"})
                .json()["runs"]} == {r["id"] for r in runs}
        export = strict_loads(client.get(f"/api/watch/runs/{runs[1]['id']}/export").text)
        assert export["first_nonfinite"] == runs[1]["first_nonfinite"]
        assert all(map(same, kept, export["steps"]))
        # the script, still pushing after the restart, makes its run live again
        more = {**pushed[-1], "step": 3}
        headers = {HEADER: read_secret(), "content-type": "application/json"}
        from backproplab.runs.codec import encode
        r = client.post(f"/api/watch/runs/{cut_id}/steps", headers=headers,
                        content=b'{"steps":[' + encode(more) + b"]}")
        assert r.status_code == 200 and r.json()["steps"] == 4
        assert client.get("/api/watch/runs").json()["runs"][0]["status"] == "live"
        assert client.post(f"/api/watch/runs/{cut_id}/end", headers=headers,
                           content=b"{}").status_code == 200
        assert client.get("/api/watch/runs").json()["runs"][0]["status"] == "finished"
        # a finished run takes no more steps; pushing still needs the secret
        r = client.post(f"/api/watch/runs/{cut_id}/steps", headers=headers,
                        content=b'{"steps":[' + encode(more) + b"]}")
        assert r.status_code == 409 and "finished" in r.json()["detail"]
        r = client.post(f"/api/watch/runs/{cut_id}/steps", content=b'{"steps":[]}',
                        headers={"content-type": "application/json"})
        assert r.status_code == 403
    finally:
        server.stop()


def test_a_watched_run_is_bounded_in_steps(secret_file):
    from backproplab.runs.store import RunStore
    from backproplab.runs.watched import Refused, WatchedRuns

    m = tiny()
    w = backproplab.watch(m)
    steps = [s for s in train(w, m, 3) if s]
    w.close()
    runs = WatchedRuns(RunStore(), max_steps=2)
    run_id = runs.create({"schema": "backproplab.run/1", "config": w.record()["config"],
                          "environment": None})
    assert runs.append(run_id, steps[:2]) == 2
    with pytest.raises(Refused, match="the most one run may hold is 2"):
        runs.append(run_id, steps[2:])
    assert runs.since(run_id, -1, 10)["steps"][1]["step"] == 1
    assert runs.append("nope", steps) is None
