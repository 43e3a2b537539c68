"""engines.compiled and GET /api/compile: the counts on programs whose answer is known
by hand, and the report of a real step."""

import time

import jax
import jax.numpy as jnp
import pytest
from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.engines.compiled import analyze, count_equations, hlo_counts
from backproplab.model import RunSpec

HLO = """HloModule m, entry_computation_layout={(f32[4]{0})->(f32[4]{0}, f32[])}

%fused_computation (param_0: f32[4]) -> f32[4] {
  %param_0 = f32[4]{0} parameter(0)
  %tanh.0 = f32[4]{0} tanh(%param_0)
  ROOT %multiply.0 = f32[4]{0} multiply(%tanh.0, %tanh.0)
}

ENTRY %main (x: f32[4]) -> (f32[4], f32[]) {
  %x = f32[4]{0} parameter(0)
  %fusion = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused_computation
  %constant = f32[] constant(0)
  ROOT %tuple = (f32[4]{0}, f32[]) tuple(%fusion, %constant)
}
"""


def test_hlo_counts_by_hand():
    # 3 instructions in the fused computation, 4 in the entry; the entry's run
    assert hlo_counts(HLO) == {"instructions": 7, "executed": 4, "fusions": 1}


def test_equations_count_nested_jaxprs_and_scan_iterations():
    def f(x):
        def body(c, _):
            return jnp.sin(c) * 2.0 + 1.0, None  # 3 equations
        return jax.lax.scan(body, x, None, length=5)[0]

    jaxpr = jax.make_jaxpr(f)(1.0).jaxpr
    assert count_equations(jaxpr) == 1 + 3
    assert count_equations(jaxpr, executed=True) == 1 + 5 * 3


def test_xla_fuses_an_elementwise_chain_into_one_kernel():
    from backproplab.engines.compiled import program_stats

    stats = program_stats(lambda x: jnp.tanh(x) * 2.0 + 1.0, (jnp.ones(1000),))
    assert stats["jaxpr_equations"] == 3
    assert stats["fusions"] == 1 and stats["hlo_after"] == 2  # parameter, fusion
    assert stats["hlo_before"] > stats["hlo_after"]
    # fused: read x once, write once (4 kB each) instead of three round trips
    assert stats["bytes_after"] == pytest.approx(8000, rel=0.01)
    assert stats["bytes_before"] > stats["bytes_after"]


def test_report_of_a_training_step():
    report = analyze(RunSpec(depth=3, width=8, batch_size=4, dtype="float64"), budget_s=0.05)
    fwd, step = report["forward"], report["step"]
    assert step["jaxpr_equations"] > fwd["jaxpr_equations"] > 0
    assert step["hlo_before"] > step["hlo_after"] > 0 and step["fusions"] > 0
    assert step["bytes_after"] < step["bytes_before"]
    assert report["op_by_op_ms"] > report["jit_ms"] > 0
    assert report["torch_ms"] > 0
    assert f"{step['fusions']} of them fusions" in report["summary"]


def test_a_deep_network_is_not_timed_op_by_op_and_the_report_says_why():
    """Op by op, JAX compiles each scanned layer's operations apart: at depth 1000 that
    was minutes of CPU and gigabytes, past the route's time limit."""
    from backproplab.engines.compiled import OP_BY_OP_MAX_DEPTH

    start = time.perf_counter()
    report = analyze(RunSpec(depth=OP_BY_OP_MAX_DEPTH + 1, width=4, batch_size=1),
                     budget_s=0.05)
    assert time.perf_counter() - start < 30
    assert report["op_by_op_ms"] is None and report["jit_ms"] > 0
    assert f"not timed beyond {OP_BY_OP_MAX_DEPTH} layers" in report["summary"]


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app())


def test_compile_route_answers_with_the_report(client):
    r = client.get("/api/compile", params={"depth": 2, "width": 4, "batch_size": 4})
    assert r.status_code == 200
    body = r.json()
    assert body["dtype"] == "float32" and body["device"] == "cpu"
    assert body["step"]["fusions"] > 0 and body["summary"].endswith(".")
    again = client.get("/api/compile", params={"depth": 2, "width": 4, "batch_size": 4,
                                               "seed": 7, "lr": 0.5}).json()
    assert again == body  # measured once per network


@pytest.mark.parametrize("params,fragment", [
    ({"dtype": "bfloat16"}, "runs float32 or float64, not bfloat16"),
    ({"depth": 200, "width": 1024, "steps": 1}, "too large to time op by op"),
    ({"depth": "deep"}, "valid integer"),
])
def test_compile_route_refuses_in_words(client, params, fragment):
    r = client.get("/api/compile", params=params)
    assert r.status_code == 422
    detail = r.json()["detail"]
    text = detail if isinstance(detail, str) else detail[0]["msg"]
    assert fragment in text
