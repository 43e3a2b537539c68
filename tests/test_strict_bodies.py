"""Every JSON body is strict RFC 8259 JSON, as on the WebSocket and the import: a bare
NaN, Infinity or a number beyond the float range is a 422 that says where, before any
route reads it; strict bodies pass unchanged."""

import httpx
import pytest


@pytest.mark.parametrize("path", ["/api/tape/inspect", "/api/runs", "/api/phase"])
@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_non_strict_number_is_a_422_that_says_where(server, path, token):
    body = b'{"depth": 2, "lr": ' + token + b"}"
    answer = httpx.post(f"{server.url}{path}", content=body,
                        headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["type"] == "json_invalid"
    where = body.index(token)  # the token's start (after its sign, for -Infinity)
    assert error["loc"][0] == "body" and where <= error["loc"][1] <= where + 1
    assert error["msg"].startswith("JSON decode error")


def test_a_strict_body_reaches_its_route_unchanged(server):
    answer = httpx.post(f"{server.url}/api/tape/inspect",
                        json={"depth": 2, "width": 3, "batch_size": 2}, timeout=30)
    assert answer.status_code == 200, answer.text
    # the body's depth reached the route: two hidden layers and the output layer
    assert [n for n in answer.json()["names"] if n.startswith("W")] == ["W1", "W2", "W3"]
