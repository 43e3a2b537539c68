"""The typed API: every JSON endpoint's OpenAPI schema is its named model, real
answers validate against those models, and typing changed nothing on the wire
(strict JSON, NaN/±Inf as strings, records byte for byte as the codec writes them)."""

import ast
import math
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from backproplab.api import models, records
from backproplab.api.app import create_app
from backproplab.runs.codec import encode
from backproplab.settings import Settings
from conftest import strict_loads

API = Path(__file__).resolve().parents[1] / "backend" / "backproplab" / "api"
SMALL = {"depth": 3, "width": 8, "steps": 4, "batch_size": 8}
# tanh at σ_w = 20, depth 300: δ overflows float32 to ∞ and then NaN
OVERFLOW = {"activation": "tanh", "depth": 300, "width": 32, "init": "normal", "sigma_w": 20.0,
            "dtype": "float32", "steps": 3, "batch_size": 8}

# (method, path) -> (status, the model its answer is documented and validated as)
ENDPOINTS = {
    ("get", "/api/health"): (200, models.Health),
    ("get", "/api/info"): (200, models.Info),
    ("get", "/api/schema/config"): (200, models.ConfigSchema),
    ("post", "/api/runs"): (202, models.RunStatus),
    ("get", "/api/runs/{run_id}"): (200, models.RunState),
    ("get", "/api/runs/{run_id}/export"): (200, records.RunRecord),
    ("post", "/api/runs/import"): (200, records.RunRecord),
    ("get", "/api/theory"): (200, records.Theory),
    ("get", "/api/phase"): (200, models.PhaseDiagram),
    ("post", "/api/tape/inspect"): (200, models.TapeInspection),
    ("post", "/api/tape/jacobian-modes"): (200, models.JacobianModes),
}


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings())) as c:
        yield c


def finished_run(client, config) -> str:
    run_id = client.post("/api/runs", json=config).json()["id"]
    deadline = time.time() + 60
    while client.get(f"/api/runs/{run_id}").json()["status"] == "running":
        assert time.time() < deadline, "run did not finish"
        time.sleep(0.05)
    return run_id


def test_openapi_names_the_model_of_every_json_endpoint(client):
    spec = client.get("/openapi.json").json()
    for (method, path), (status, model) in ENDPOINTS.items():
        content = spec["paths"][path][method]["responses"][str(status)]["content"]
        assert content["application/json"]["schema"] == \
            {"$ref": f"#/components/schemas/{model.__name__}"}, (method, path)
    schemas = spec["components"]["schemas"]
    # the record's parts are documented, not "string"
    assert schemas["RunRecord"]["properties"]["config"] == \
        {"$ref": "#/components/schemas/RunConfig"}
    assert schemas["StepRecord"]["properties"]["layers"]["items"] == \
        {"$ref": "#/components/schemas/LayerRecord"}
    # a number field says that NaN/±Inf arrive as strings
    delta = schemas["LayerRecord"]["properties"]["delta_norm"]
    assert {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]} in delta["anyOf"]
    # the bodies a client sends are documented as the models they are validated as
    for path, model in (("/api/runs", "RunConfig"), ("/api/runs/import", "RunRecord"),
                        ("/api/report", "RunRecord")):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{model}"}, path
    # /api/theory documents RunConfig's fields as its query parameters
    params = {p["name"] for p in spec["paths"]["/api/theory"]["get"]["parameters"]}
    assert {"depth", "width", "activation", "sigma_w"} <= params


def test_real_answers_validate_against_their_models(client):
    run_id = finished_run(client, SMALL)
    export = client.get(f"/api/runs/{run_id}/export")
    answers = {
        ("get", "/api/health"): client.get("/api/health"),
        ("get", "/api/info"): client.get("/api/info"),
        ("get", "/api/schema/config"): client.get("/api/schema/config"),
        ("post", "/api/runs"): client.post("/api/runs", json=SMALL),
        ("get", "/api/runs/{run_id}"): client.get(f"/api/runs/{run_id}"),
        ("get", "/api/runs/{run_id}/export"): export,
        ("post", "/api/runs/import"): client.post(
            "/api/runs/import", content=export.content,
            headers={"content-type": "application/json"}),
        ("get", "/api/theory"): client.get("/api/theory", params={"depth": 10}),
        ("get", "/api/phase"): client.get("/api/phase", params={
            "grid": 3, "depth": 4, "measured": "true", "width": 16, "batch": 4}),
        ("post", "/api/tape/inspect"): client.post("/api/tape/inspect", json={}),
        ("post", "/api/tape/jacobian-modes"): client.post(
            "/api/tape/jacobian-modes", json={"depth": 2, "width": 8}),
    }
    assert answers.keys() == ENDPOINTS.keys()
    for key, response in answers.items():
        status, model = ENDPOINTS[key]
        assert response.status_code == status, (key, response.text)
        model.model_validate(strict_loads(response.text))  # raises on any mismatch
    state = models.RunState.model_validate(answers[("get", "/api/runs/{run_id}")].json())
    assert state.status == "done" and state.steps_recorded == 4
    assert len(state.record.steps[0].layers) == SMALL["depth"] + 1
    phase = models.PhaseDiagram.model_validate(answers[("get", "/api/phase")].json())
    assert phase.measured is not None and len(phase.measured.measured_chi1) == 3


def test_the_models_are_not_permissive(client):
    """A validation that cannot fail proves nothing: break an answer, it must fail."""
    record = client.get(f"/api/runs/{finished_run(client, SMALL)}/export").json()
    del record["steps"][1]["layers"][2]["grad_w_norm"]
    with pytest.raises(ValidationError):
        records.RunRecord.model_validate(record)
    walk = client.post("/api/tape/inspect", json={}).json()
    walk["steps"][0]["cotangent_in"] = "a lot"
    with pytest.raises(ValidationError):
        models.TapeInspection.model_validate(walk)


def test_records_go_out_as_the_codec_writes_them_nonfinite_included(client):
    run_id = finished_run(client, OVERFLOW)
    record = client.app.state.manager.store.record(run_id)
    export = client.get(f"/api/runs/{run_id}/export")
    assert export.content == encode(record)  # not re-serialized by the model
    state = client.get(f"/api/runs/{run_id}")
    assert strict_loads(state.text)["record"] == strict_loads(export.text)
    values = [layer["delta_norm"] for s in strict_loads(export.text)["steps"]
              for layer in s["layers"]]
    assert {"Infinity", "NaN"} & set(values)  # strings, not null
    assert None not in values
    # and the model reads them back as the floats they stand for
    parsed = records.RunRecord.model_validate(strict_loads(export.text))
    floats = [layer.delta_norm for s in parsed.steps for layer in s.layers]
    for raw, value in zip(values, floats, strict=True):
        if raw == "NaN":
            assert math.isnan(value)
        elif raw == "Infinity":
            assert value == math.inf
        else:
            assert value == raw


def _route_modules() -> list[Path]:
    return sorted((API / "routes").glob("*.py"))


def test_no_route_reaches_into_app_state():
    for path in _route_modules():
        assert "app.state" not in path.read_text(), f"{path.name}: use deps.SettingsDep/ManagerDep"


def test_no_route_imports_private_names():
    """What routes share lives in api/deps.py (or another public module), not in a
    route module's private names."""
    for path in _route_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                private = [a.name for a in node.names
                           if a.name.startswith("_") and not a.name.endswith("__")]
                assert not private, f"{path.name} imports private {private} from {node.module}"
