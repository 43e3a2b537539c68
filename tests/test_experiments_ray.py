"""Experiments on a Ray cluster: a local head with 2 CPUs, started inside a network
namespace that has only loopback (outside one, Ray binds to the machine's address
whatever --node-ip-address says) and a PID namespace of its own (so stopping it
cannot touch any other Ray on the machine, and nothing outlives the test). The same
experiment through the CLI (`--ray 127.0.0.1:6379`) and through the server's job
runner gives the numbers of an in-process run and of a local process pool."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from backproplab.experiments import run_experiment
from backproplab.runs.codec import encode
from conftest import strict_loads

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
JOBS_SCRIPT = """
import sys, time
from backproplab.experiments.jobs import ExperimentJobs
from backproplab.runs.codec import encode
jobs = ExperimentJobs(ray_address="127.0.0.1:6379")
job = jobs.start("chen2016", quick=True)
while job.status in ("queued", "running"):
    time.sleep(0.1)
assert job.status == "done", (job.status, job.error)
open(sys.argv[1], "wb").write(encode(job.result))
"""
NAMESPACE_SCRIPT = """
set -e
ip link set lo up
"$BIN/ray" start --head --node-ip-address 127.0.0.1 --port 6379 --num-cpus 2 \\
  --include-dashboard false --disable-usage-stats --temp-dir "$WORK/ray" \\
  > "$WORK/ray-start.log" 2>&1
trap '"$BIN/ray" stop --force > /dev/null 2>&1' EXIT
timeout 240 "$BIN/python" -m backproplab.cli experiment he2015 --quick \\
  --ray 127.0.0.1:6379 --out "$WORK/cli" --no-png --quiet
timeout 120 "$BIN/python" -c "$JOBS_SCRIPT" "$WORK/jobs.json"
"""


def as_json(result: dict) -> dict:
    """What a result reads as once written: strict JSON, NaN/±Inf as strings."""
    return strict_loads(encode(result).decode())


def _namespace_command() -> list[str]:
    """unshare with its own network and PID namespaces where this machine allows it."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare to isolate the Ray head")
    for flags in (["-n", "-p", "-f", "--mount-proc"], ["-n"]):
        probe = subprocess.run(["unshare", *flags, "true"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", *flags]
    pytest.skip("creating a network namespace is not permitted here (needs root)")


def test_ray_cluster_gives_the_in_process_numbers():
    command = _namespace_command()
    work = tempfile.mkdtemp(prefix="bpl-ray-", dir="/tmp")  # short: Ray's socket paths
    try:
        env = {**os.environ, "BIN": str(BIN), "WORK": work, "JOBS_SCRIPT": JOBS_SCRIPT,
               "RAY_USAGE_STATS_ENABLED": "0"}
        proc = subprocess.run([*command, "bash", "-c", NAMESPACE_SCRIPT], env=env,
                              capture_output=True, text=True, timeout=480)
        log = Path(work, "ray-start.log")
        assert proc.returncode == 0, (proc.stderr[-3000:],
                                      log.read_text()[-2000:] if log.exists() else "")
        on_ray = strict_loads(Path(work, "cli", "result.json").read_text())
        via_jobs = strict_loads(Path(work, "jobs.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert on_ray["execution"]["backend"] == "ray"
    local = as_json(run_experiment("he2015", quick=True))
    pooled = as_json(run_experiment("he2015", quick=True, workers=2))
    assert on_ray["runs"] == local["runs"]  # every loss, accuracy and δ norm, bit for bit
    assert pooled["runs"] == local["runs"]  # all three backends
    assert on_ray["checks"] == local["checks"] == pooled["checks"] and on_ray["passed"]
    assert via_jobs["execution"]["backend"] == "ray"
    chen = as_json(run_experiment("chen2016", quick=True))
    assert via_jobs["runs"] == chen["runs"] and via_jobs["checks"] == chen["checks"]
