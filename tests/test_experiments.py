"""Paper reproductions: each quick experiment passes its checks against the published
numbers; the three execution backends give the same numbers; ξ_c against simulation;
the CLI's outputs."""

import math
import re

import numpy as np
import pytest

from backproplab.cli import main
from backproplab.experiments import check, get, registry, run_experiment
from backproplab.experiments.correlation import correlation_fixed_point, xi_c
from backproplab.experiments.execute import execute
from backproplab.experiments.tasks import run_task
from backproplab.theory import chi1, q_star
from conftest import strict_loads

NAMES = ["glorot2010", "he2015", "chen2016", "schoenholz2017", "pennington2017"]


@pytest.fixture(scope="module")
def quick_results():
    return {}


@pytest.mark.parametrize("name", NAMES)
def test_quick_experiment_passes_its_checks_against_the_paper(name, quick_results):
    result = run_experiment(name, quick=True)
    quick_results[name] = result
    assert result["experiment"] == name and result["config"] == {"quick": True, "seed": 0}
    assert len(result["runs"]) == len(get(name).tasks(True, 0))
    assert result["checks"] and result["figures"]
    for c in result["checks"]:
        assert set(c) >= {"name", "published", "measured", "tolerance", "pass"}
        assert c["source"], "every published value says where it comes from"
        assert c["pass"], c
    assert result["passed"]


def test_published_values_are_the_papers():
    # the numbers quoted in the code, and what each check compares them with
    results = {n: {c["name"]: c["published"] for c in get(n).analyze(
        get(n).tasks(True, 0), [run_task(t) for t in get(n).tasks(True, 0)], True)[1]}
        for n in ("glorot2010", "chen2016")}
    glorot = results["glorot2010"]
    assert glorot["standard init: mean singular value of ∂a(l+1)/∂a(l)"] == 0.5
    assert glorot["normalized init: mean singular value of ∂a(l+1)/∂a(l)"] == 0.8
    assert sorted(results["chen2016"].values()) == [0.5, 1.0, 2.0]


def test_check_relations():
    assert check("a", 0.5, 0.58, 0.1, "s")["pass"]
    assert not check("a", 0.5, 0.61, 0.1, "s")["pass"]
    assert check("b", 1.0, 0.4, 0.5, "s", relation="<")["pass"]
    assert not check("b", 1.0, 0.6, 0.5, "s", relation="<")["pass"]
    assert check("c", 1.0, 1.6, 0.5, "s", relation=">")["pass"]
    assert not check("a", 0.5, math.nan, 0.1, "s")["pass"]
    with pytest.raises(ValueError):
        check("a", 0, 0, 0, "s", relation="~")


def test_the_registry_lists_the_five_papers():
    assert list(registry()) == NAMES
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        get("nope")


def _mixed_tasks():
    # one task of every kind, small: a training run on the digits, a layer study, a
    # Jacobian spectrum and a memory measurement
    base = {"depth": 4, "width": 16, "steps": 0, "seed": 5,
            "record": {"hist_bins": 8, "delta_samples": 0}}
    return [
        {"kind": "train", "label": "train", "params": {"config": {
            **base, "dataset": "digits", "loss": "cross_entropy", "steps": 12, "lr": 0.05,
            "record": {"every": 4, "hist_bins": 8, "delta_samples": 0}}}},
        {"kind": "layers_at_init", "label": "layers", "params": {"examples": 2, "config": {
            **base, "dataset": "digits", "init": "standard"}}},
        {"kind": "spectrum", "label": "spectrum", "params": {"config": {
            **base, "dataset": "gaussian", "input_dim": 16, "dtype": "float64"}}},
        {"kind": "memory", "label": "memory", "params": {"config": {
            **base, "checkpoint": "sqrt", "dtype": "float64", "steps": 1}}},
    ]


def test_in_process_and_pool_give_identical_numbers_streamed_as_they_finish():
    tasks = _mixed_tasks()
    seen_local, seen_pool = [], []
    local, how_local = execute(tasks, lambda i, r: seen_local.append(i))
    pooled, how_pool = execute(tasks, lambda i, r: seen_pool.append(i), workers=2)
    assert how_local["backend"] == "in-process" and how_pool == {**how_pool, "backend": "pool",
                                                                   "workers": 2}
    assert pooled == local  # bit for bit: same seed, same numbers, wherever they ran
    assert seen_local == [0, 1, 2, 3] and sorted(seen_pool) == [0, 1, 2, 3]
    assert local[0]["test_accuracy"][-1] is not None and len(local[2]["sv"]) == 16


def test_cancelling_stops_between_tasks():
    import threading

    from backproplab.engines import Cancelled

    cancel = threading.Event()
    done = []

    def on_result(index, result):
        done.append(index)
        cancel.set()

    with pytest.raises(Cancelled):
        execute(_mixed_tasks(), on_result, cancel=cancel)
    assert done == [0]


def test_xi_c_is_minus_one_over_log_chi1_in_the_ordered_phase():
    for w2 in (1.0, 1.3, 1.6):
        q = float(q_star("tanh", w2, 0.05))
        assert correlation_fixed_point("tanh", w2, 0.05) == 1.0
        assert xi_c("tanh", w2, 0.05) == pytest.approx(-1 / math.log(float(chi1("tanh", w2, q))),
                                                       rel=1e-6)


def test_correlation_fixed_point_in_the_chaotic_phase_matches_a_wide_random_network():
    # two inputs pushed through one wide random tanh network: the correlation of their
    # pre-activations settles at c* (exact as width → ∞; a few 0.01 at width 1500)
    w2, b2, width = 3.0, 0.05, 1500
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, width))
    for _ in range(20):
        W = rng.standard_normal((width, width), dtype=np.float32) * math.sqrt(w2 / width)
        z = np.tanh(z) @ W.T + rng.standard_normal(width) * math.sqrt(b2)
    measured = float(np.dot(z[0], z[1]) / np.sqrt(np.dot(z[0], z[0]) * np.dot(z[1], z[1])))
    assert correlation_fixed_point("tanh", w2, b2) == pytest.approx(measured, abs=0.02)
    assert correlation_fixed_point("tanh", w2, b2) < 0.9
    assert 0 < xi_c("tanh", w2, b2) < 20


def test_cli_writes_result_report_and_png(tmp_path, capsys):
    out = tmp_path / "chen"
    assert main(["experiment", "chen2016", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    result = strict_loads((out / "result.json").read_text())
    assert set(result) >= {"experiment", "config", "runs", "checks"}
    assert result["experiment"] == "chen2016" and result["config"]["quick"] is True
    assert "PASS  no checkpointing" in printed.out
    assert "[8/8]" in printed.err  # progress on stderr, one line per finished run
    html = (out / "report.html").read_text()
    assert "<script src" not in html and "<script>" in html  # plotly.js inlined
    assert "PASS" in html and "Chen et al. 2016" in html
    # where the runs ran, in the Experiments page's words (never "8 runs on in-process")
    assert "runs on in-process" not in html and "runs on in-process" not in printed.out
    assert re.search(r"8 runs, in a single process, in \d+(\.\d+)? (ms|s) ·", html)
    assert re.search(r"^8 runs, in this process, in \d+(\.\d+)? (ms|s); ", printed.out, re.M)
    png = (out / "figure-1.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_cli_lists_and_rejects_unknown_names(capsys):
    assert main(["experiment", "--list"]) == 0
    assert "schoenholz2017" in capsys.readouterr().out
    assert main(["experiment", "nope", "--out", "/tmp/never"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err


ISOLATED = r"""
import importlib.abc, sys
BLOCKED = {"fastapi", "starlette", "pydantic", "pydantic_core", "pydantic_settings",
           "uvicorn", "plotly", "httpx"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
from backproplab.experiments import run_experiment
result = run_experiment("chen2016", quick=True)
assert result["passed"] and result["figures"]
print("isolated ok")
"""


def test_experiments_run_without_web_packages_or_plotly():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", ISOLATED], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "isolated ok" in proc.stdout


@pytest.mark.parametrize("execution,words", [
    ({"backend": "in-process"}, "in a single process"),
    ({"backend": "pool", "workers": 1}, "on a pool of 1 worker process"),
    ({"backend": "pool", "workers": 4}, "on a pool of 4 worker processes"),
    ({"backend": "ray", "address": "127.0.0.1:6379"}, "on the Ray cluster at 127.0.0.1:6379")])
def test_where_runs_ran_reads_as_the_experiments_page_writes_it(execution, words):
    from backproplab.experiments.report import duration, executed_where

    assert executed_where(execution) == words
    assert [duration(s) for s in (0.00042, 0.812, 1.12, 12.34, 125, 3725)] == \
        ["0.42 ms", "812 ms", "1.12 s", "12.3 s", "2 min 5 s", "1 h 2 min"]
