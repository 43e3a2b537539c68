"""The experiments API: start in a worker thread, progress (poll and server-sent
events), result and report, the cache by config hash, cancel, busy and bad names."""

import time

import pytest
from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.experiments import run_experiment
from backproplab.settings import Settings
from conftest import strict_loads


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(experiment_cache_dir=str(tmp_path / "cache")))
    with TestClient(app) as c:
        yield c


def wait(client, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get(f"/api/experiments/jobs/{job_id}").json()
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_list_names_the_five_papers_with_their_sizes(client):
    items = client.get("/api/experiments").json()
    assert [i["name"] for i in items] == ["glorot2010", "he2015", "chen2016", "schoenholz2017",
                                          "pennington2017"]
    chen = items[2]
    assert chen["runs_quick"] == 8 and chen["runs_full"] == 14 and "Chen" in chen["paper"]


def test_run_poll_result_equals_the_library_and_is_cached(client, tmp_path):
    started = client.post("/api/experiments/chen2016/jobs", json={"quick": True})
    assert started.status_code == 202
    job = started.json()
    assert job["status"] in ("queued", "running") and not job["cached"]
    status = wait(client, job["id"])
    assert status["status"] == "done" and status["done"] == status["total"] == 8
    response = client.get(f"/api/experiments/jobs/{job['id']}/result")
    result = strict_loads(response.text)
    direct = run_experiment("chen2016", quick=True)
    assert [r["result"] for r in result["runs"]] == [r["result"] for r in direct["runs"]]
    assert [(c["measured"], c["pass"]) for c in result["checks"]] == \
        [(c["measured"], c["pass"]) for c in direct["checks"]]
    # the same config again: answered from the cache at once, and from its file
    again = client.post("/api/experiments/chen2016/jobs", json={"quick": True}).json()
    assert again["cached"] and again["status"] == "done"
    assert again["config_hash"] == job["config_hash"]
    assert (tmp_path / "cache" / f"{job['config_hash']}.json").is_file()
    report = client.get(f"/api/experiments/jobs/{again['id']}/report")
    assert report.status_code == 200 and "<script src" not in report.text
    assert "PASS" in report.text


def test_events_stream_progress_to_the_end(client):
    job = client.post("/api/experiments/pennington2017/jobs", json={"quick": True}).json()
    with client.stream("GET", f"/api/experiments/jobs/{job['id']}/events") as stream:
        text = stream.read().decode()
    events = [block for block in text.split("\n\n") if block.strip()]
    assert events[-1].startswith("event: end")
    done = [strict_loads(block.split("data: ", 1)[1])["done"] for block in events
            if block.startswith("event: progress")]
    assert done == sorted(done) and done[-1] == 8


def test_cancel_stops_a_running_experiment(client):
    job = client.post("/api/experiments/schoenholz2017/jobs", json={"quick": False}).json()
    time.sleep(0.5)
    cancelled = client.delete(f"/api/experiments/jobs/{job['id']}")
    assert cancelled.status_code == 200
    status = wait(client, job["id"], timeout=30)
    assert status["status"] == "cancelled" and status["done"] < status["total"]
    assert client.get(f"/api/experiments/jobs/{job['id']}/result").status_code == 409


def test_one_at_a_time_unknown_names_and_jobs(client):
    first = client.post("/api/experiments/schoenholz2017/jobs", json={"quick": False}).json()
    busy = client.post("/api/experiments/he2015/jobs", json={"quick": False})
    assert busy.status_code == 429 and "already running" in busy.json()["detail"]
    client.delete(f"/api/experiments/jobs/{first['id']}")
    wait(client, first["id"], timeout=30)
    missing = client.post("/api/experiments/nope/jobs")
    assert missing.status_code == 404 and "glorot2010" in missing.json()["detail"]
    assert client.get("/api/experiments/jobs/x999").status_code == 404
    bad = client.post("/api/experiments/chen2016/jobs", json={"seed": -1})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "seed"


def test_a_result_kept_in_the_cache_directory_survives_a_restart(tmp_path):
    settings = Settings(experiment_cache_dir=str(tmp_path / "kept"))
    with TestClient(create_app(settings)) as c:
        job = c.post("/api/experiments/pennington2017/jobs", json={"quick": True}).json()
        assert wait(c, job["id"])["status"] == "done"
        first = c.get(f"/api/experiments/jobs/{job['id']}/result").json()
    with TestClient(create_app(settings)) as c:  # a new server on the same directory
        again = c.post("/api/experiments/pennington2017/jobs", json={"quick": True}).json()
        assert again["cached"] and again["status"] == "done"
        assert c.get(f"/api/experiments/jobs/{again['id']}/result").json() == first


def test_results_are_kept_beside_the_run_store_unless_it_keeps_nothing(tmp_path):
    from backproplab.api.deps import experiment_cache_dir

    data = tmp_path / "data"
    settings = Settings(data_dir=str(data))
    assert experiment_cache_dir(settings) == str(data / "experiments")
    with TestClient(create_app(settings)) as c:
        job = c.post("/api/experiments/pennington2017/jobs", json={"quick": True}).json()
        assert wait(c, job["id"])["status"] == "done"
    kept = list((data / "experiments").glob("*.json"))
    assert [p.stem for p in kept] == [job["config_hash"]]
    with TestClient(create_app(settings)) as c:  # restarted on the same data directory
        again = c.post("/api/experiments/pennington2017/jobs", json={"quick": True}).json()
        assert again["cached"] and again["status"] == "done"
    assert experiment_cache_dir(Settings(data_dir=":memory:")) is None
    assert experiment_cache_dir(Settings(data_dir=str(data),
                                         experiment_cache_dir=":memory:")) is None
    assert experiment_cache_dir(Settings(data_dir=str(data),
                                         experiment_cache_dir=str(tmp_path / "x"))) == \
        str(tmp_path / "x")


@pytest.mark.parametrize("damage", [b"{\"config_hash\": \"trunc", b"NaN", b"{\"runs\": 3}", b"",
                                    b"{\"config_hash\": \"HASH\", \"runs\": [], \"checks\": []}"])
def test_a_damaged_result_file_is_set_aside_and_the_experiment_runs_again(tmp_path, damage):
    """Not JSON, truncated, empty, or JSON of the wrong shape (which the report could
    not render): set aside, and computed again."""
    settings = Settings(experiment_cache_dir=str(tmp_path / "kept"))
    with TestClient(create_app(settings)) as c:
        job = c.post("/api/experiments/pennington2017/jobs", json={"quick": True}).json()
        assert wait(c, job["id"])["status"] == "done"
        first = c.get(f"/api/experiments/jobs/{job['id']}/result").json()
    path = tmp_path / "kept" / f"{job['config_hash']}.json"
    damage = damage.replace(b"HASH", job["config_hash"].encode())  # well-formed JSON, no result
    path.write_bytes(damage)
    with TestClient(create_app(settings)) as c:  # restarted: the file is not a result
        again = c.post("/api/experiments/pennington2017/jobs", json={"quick": True})
        assert again.status_code == 202 and not again.json()["cached"], again.text
        assert wait(c, again.json()["id"])["status"] == "done"
        result = c.get(f"/api/experiments/jobs/{again.json()['id']}/result").json()
    assert result["checks"] == first["checks"]  # the same numbers, computed again
    assert path.with_name(path.name + ".bad").read_bytes() == damage  # kept to look at
    assert path.is_file()  # and the new result written in its place


def test_a_result_that_cannot_be_cached_still_ends_the_job(tmp_path):
    """A full disk (here: a directory where the file goes) must not leave the job
    'running' and the server refusing every experiment after it."""
    settings = Settings(experiment_cache_dir=str(tmp_path / "kept"))
    with TestClient(create_app(settings)) as c:
        from backproplab.experiments.run import config_hash

        key = config_hash("pennington2017", True, 0)
        (tmp_path / "kept" / f".{key}.json.tmp").mkdir(parents=True)
        job = c.post("/api/experiments/pennington2017/jobs", json={"quick": True}).json()
        assert wait(c, job["id"])["status"] == "done"
        assert c.get(f"/api/experiments/jobs/{job['id']}/result").status_code == 200
        other = c.post("/api/experiments/glorot2010/jobs", json={"quick": True})
        assert other.status_code == 202, other.text  # the slot was given back


@pytest.mark.parametrize("body", [{"seed": True}, {"quick": "yes"}, {"quick": 1}])
def test_start_refuses_a_switch_for_a_number_and_a_number_for_a_switch(body):
    with TestClient(create_app(Settings())) as c:
        r = c.post("/api/experiments/pennington2017/jobs", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][-1] == next(iter(body))
