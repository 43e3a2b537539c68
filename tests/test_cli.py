"""The command line: headless runs, reports, phase-diagram sweeps."""

import json
import subprocess
import sys

from backproplab.cli import main
from conftest import strict_loads


def test_run_writes_a_record_with_flags_over_a_config(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"depth": 7, "width": 8, "activation": "relu"}))
    out = tmp_path / "run.json"
    assert main(["run", "--config", str(cfg), "--depth", "4", "--steps", "5",
                 "--record-every", "2", "--no-residual", "--out", str(out), "--quiet"]) == 0
    record = strict_loads(out.read_text())
    assert record["config"]["depth"] == 4 and record["config"]["activation"] == "relu"
    assert [s["step"] for s in record["steps"]] == [0, 2, 4]
    assert len(record["steps"][0]["layers"]) == 5
    assert record["theory"]["chi1"] == 0.5  # relu with Xavier on equal widths: σ_w²/2


def test_run_rejects_a_bad_field_clearly(tmp_path, capsys):
    assert main(["run", "--width", "0", "--out", str(tmp_path / "x.json")]) == 2
    assert "width" in capsys.readouterr().err


def test_report_is_one_offline_html_file(tmp_path):
    out = tmp_path / "run.json"
    main(["run", "--depth", "3", "--width", "8", "--steps", "4", "--out", str(out), "--quiet",
          "--record-jacobian-every", "2"])
    html = tmp_path / "report.html"
    assert main(["report", str(out), "-o", str(html)]) == 0
    text = html.read_text()
    assert text.count("<script") >= 5 and 'src="http' not in text  # nothing to fetch
    assert "Gradient flow" in text and "Jacobian spectrum" in text


def test_sweep_writes_json_html_and_png(tmp_path):
    out, html, png = tmp_path / "p.json", tmp_path / "p.html", tmp_path / "p.png"
    proc = subprocess.run([sys.executable, "-m", "backproplab.cli", "sweep", "--grid", "5",
                           "--depth", "6", "--width", "16", "--out", str(out), "--html",
                           str(html), "--png", str(png)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = strict_loads(out.read_text())
    assert len(data["analytic"]["chi1"]) == 5 and len(data["measured"]["measured_chi1"]) == 5
    assert html.stat().st_size > 1_000_000  # plotly.js embedded
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
