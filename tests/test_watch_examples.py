"""The examples run (fewer steps than their defaults) and record what they claim."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from backproplab.runs.jsonl import parse_record  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_cnn_learns_and_watches_every_module(tmp_path):
    out = tmp_path / "digits.jsonl"
    result = example("digits_cnn").main(["--steps", "50", "--out", str(out)])
    assert result["test_accuracy"] > 0.3  # chance is 0.1
    assert result["first_nonfinite"] is None
    record = parse_record(out.read_bytes())
    assert len(record["steps"]) == 50
    names = [m["name"] for m in record["config"]["modules"]]
    assert names[:4] == ["stem.0", "stem.1", "stem.2", "blocks.0.conv1"]
    assert "blocks.1.relu" in names and names[-1] == "head"
    last = record["steps"][-1]
    assert last["accuracy"] is not None
    for layer in last["layers"]:
        assert math.isfinite(layer["delta_norm"]), layer["name"]
        assert (layer["dead_frac"] is not None) == (layer["kind"] == "ReLU")


def test_transformer_loss_falls_and_clipping_is_recorded(tmp_path):
    out = tmp_path / "transformer.jsonl"
    result = example("transformer").main(["--steps", "60", "--every", "3", "--out", str(out)])
    assert result["last_loss"] < result["first_loss"] - 0.3
    record = parse_record(out.read_bytes())
    assert [s["step"] for s in record["steps"]] == list(range(0, 60, 3))
    names = [m["name"] for m in record["config"]["modules"]]
    assert names[:3] == ["embed", "blocks.0.ln1", "blocks.0.attn.qkv"]
    for step in record["steps"]:
        assert 0 < step["clip_factor"] <= 1 and step["grad_norm"] > 0


def test_the_broken_network_names_the_module_that_overflowed(tmp_path):
    out = tmp_path / "broken.jsonl"
    result = example("broken_overflow").main(["--out", str(out)])
    found = result["first_nonfinite"]
    assert found is not None and found["in"] == "forward" and found["what"] == "output"
    assert found["module"].startswith("exp")
    record = parse_record(out.read_bytes())
    assert record["first_nonfinite"] == found
    step = next(s for s in record["steps"] if s["step"] == found["step"])
    names = [layer["name"] for layer in step["layers"]]
    at = names.index(found["module"])
    assert not math.isfinite(step["layers"][at]["a_mean"])
    assert all(math.isfinite(layer["a_mean"]) for layer in step["layers"][:at])
    earlier = [s for s in record["steps"] if s["step"] < found["step"]]
    assert all(math.isfinite(layer["a_mean"]) for s in earlier for layer in s["layers"])
