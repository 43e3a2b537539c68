"""The README's "The live protocol" section is exact: every message type the server can
send, every type it accepts, every error code and close code in the source appears
in its tables (parsed from the source, not listed here), and /docs shows the text."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.api.live_protocol import PROTOCOL
from backproplab.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
LIVE = ROOT / "backend" / "backproplab" / "api" / "routes" / "live.py"
MANAGER = ROOT / "backend" / "backproplab" / "runs" / "manager.py"
FRONTEND = ROOT / "frontend" / "js"


def section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def table_after(text: str, heading: str) -> dict[str, list[str]]:
    """The first markdown table after `heading`: first column (continuation rows
    with an empty first cell belong to the row above) -> the other cells."""
    lines = text[text.index(heading):].splitlines()
    rows: dict[str, list[str]] = {}
    key = None
    started = False
    for line in lines[1:]:
        if not line.startswith("|"):
            if started:
                break
            continue
        started = True
        cells = [c.strip() for c in line.strip("|").split("|")]
        if set(cells[0]) <= {"-"} and cells[0]:
            continue
        if cells[0]:
            key = cells[0].strip("`")
            rows[key] = []
        if key is not None:
            rows[key] += cells[1:]
    rows.pop("type", None)
    rows.pop("code", None)
    return rows


@pytest.fixture(scope="module")
def readme_section() -> str:
    return section((ROOT / "README.md").read_text(), "The live protocol")


def sent_types() -> set[str]:
    """Every "type" of a frame the server builds (the live route and the run manager)."""
    source = LIVE.read_text() + MANAGER.read_text()
    return set(re.findall(r'\{"type": "(\w+)"', source))


def accepted_types() -> set[str]:
    """Every message type the live route dispatches on."""
    handle = LIVE.read_text().split("async def _handle", 1)[1].split("\n    async def ", 1)[0]
    found = set(re.findall(r'kind == "(\w+)"', handle))
    for group in re.findall(r"kind (?:not )?in \(([^)]*)\)", handle):
        found |= set(re.findall(r'"(\w+)"', group))
    return found


def test_the_readme_section_is_the_protocol_text(readme_section):
    body = readme_section.split("\n", 1)[1].strip()
    assert PROTOCOL.strip() in body


def test_every_frame_the_server_sends_is_in_the_table(readme_section):
    types = sent_types()
    assert {"run", "step", "done", "error", "pong"} <= types  # the parse found them
    table = table_after(readme_section, "Server → client:")
    assert types <= set(table), f"undocumented: {types - set(table)}"
    assert set(table) <= types, f"documented but never sent: {set(table) - types}"


def test_every_field_of_the_server_frames_is_in_the_table(readme_section):
    table = table_after(readme_section, "Server → client:")
    source = LIVE.read_text() + MANAGER.read_text()
    for kind, body in re.findall(r'\{"type": "(\w+)",([^}]*)\}', source):
        for field in re.findall(r'"(\w+)":', body):
            assert f"`{field}`" in " ".join(table[kind]), f"{kind}.{field} undocumented"


def test_every_message_the_server_accepts_is_in_the_table(readme_section):
    types = accepted_types()
    assert {"start", "update", "pause", "resume", "step", "stop", "ping"} == types
    table = table_after(readme_section, "Client → server:")
    assert set(table) == types
    # and the browser sends nothing else
    sent_by_browser = set(re.findall(r"send\(\{ type: '(\w+)'", "".join(
        p.read_text() for p in FRONTEND.rglob("*.js"))))
    assert sent_by_browser and sent_by_browser <= types


def test_every_error_code_and_close_code_is_documented(readme_section):
    source = LIVE.read_text() + MANAGER.read_text()
    codes = set(re.findall(r'self\.error\("(\w+)"', source)) | \
        set(re.findall(r'"code": "(\w+)"', source)) | set(re.findall(r'code="(\w+)"', source))
    assert {"bad_json", "invalid_config", "busy", "too_large", "run_failed"} <= codes
    errors = readme_section[readme_section.index("Error codes:"):]
    for code in codes:
        assert f"`{code}`" in errors, f"error code {code} undocumented"
    closes = set(re.findall(r"^CLOSE_\w+ = (\d+)", LIVE.read_text(), re.M))
    assert {"1008", "1009", "1013"} <= closes
    table = table_after(readme_section, "Close codes:")
    assert closes <= set(table)
    # the browser's transport reacts to a close code: it is documented too
    transport = (FRONTEND / "transport.js").read_text()
    assert set(re.findall(r"code === (\d+)", transport)) <= set(table)


def test_docs_show_the_protocol():
    with TestClient(create_app(Settings())) as client:
        description = client.get("/openapi.json").json()["info"]["description"]
    assert "WS /api/live" in description and PROTOCOL.strip() in description
