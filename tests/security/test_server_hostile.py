"""The server under hostile requests: every answer is a 4xx with the `{"error": {...}}`
envelope — never a 5xx, never a stack trace — and no tenant reads another's batches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.handles import FakeProvider
from tests.server.live import live_server

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}
LABEL: dict[str, Any] = {"operation": "label", "categories": ["positive", "negative"],
                         "items": [{"content": "great"}, {"content": "awful"}]}
MAX_BODY = 256 * 1024
MAX_UPLOAD = 64 * 1024


@pytest.fixture
def http(fake_provider: FakeProvider, tmp_path: Path) -> Iterator[httpx.Client]:
    with live_server(fake_provider.base_url, tmp_path / "store.db", max_body_bytes=MAX_BODY,
                     max_upload_bytes=MAX_UPLOAD) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def assert_client_error(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A 4xx (one of ``statuses`` when given) with the error envelope and no trace."""
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    assert 400 <= response.status_code < 500, f"{where}: {response.text[:500]}"
    if statuses:
        assert response.status_code in statuses, f"{where}: {response.text[:500]}"
    for marker in ("Traceback", 'File "', "site-packages", "Exception"):
        assert marker not in response.text, f"{where}: {response.text[:500]}"
    body = response.json()
    assert set(body) == {"error"}, f"{where}: {body}"
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body
    assert isinstance(body["error"].get("code"), str), body
    error: dict[str, Any] = body["error"]
    return error


def _batch(http: httpx.Client, headers: dict[str, str] = A, **extra: Any) -> dict[str, Any]:
    response = http.post("/v1/batches", json=LABEL, headers={**headers, **extra})
    assert response.status_code == 200, response.text
    batch: dict[str, Any] = response.json()
    return batch


ROUTES = [("GET", "/v1/batches"), ("POST", "/v1/batches"), ("POST", "/v1/completions"),
          ("POST", "/v1/batches/upload"), ("GET", "/v1/batches/batch_x"),
          ("GET", "/v1/batches/batch_x/output"), ("POST", "/v1/batches/batch_x/cancel"),
          ("GET", "/metrics")]
BAD_AUTH: list[dict[str, str] | dict[bytes, bytes]] = [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer key-c"},
    {"Authorization": "Bearer key-a2"}, {"Authorization": "Bearer key-"},
    {"Authorization": "Basic a2V5LWE6"}, {"Authorization": "key-a"},
    {"Authorization": "Bearer " + "k" * 20000}, {b"Authorization": "Bearer k\xe9y".encode("latin-1")},
    {"X-Api-Key": "key-a"},
]


def test_every_route_refuses_missing_or_wrong_keys(http: httpx.Client) -> None:
    for method, path in ROUTES:
        for headers in BAD_AUTH:
            response = http.request(method, path, headers=headers, json=LABEL)
            if response.status_code == 431:  # header too large, refused by the HTTP layer
                continue
            assert_client_error(response, 401)


def test_a_tenant_never_reaches_another_tenants_batch(http: httpx.Client) -> None:
    batch = _batch(http, A, **{"Idempotency-Key": "shared-key"})
    bid = batch["id"]
    for method, path, params in [("GET", f"/v1/batches/{bid}", {}),
                                 ("POST", f"/v1/batches/{bid}/cancel", {}),
                                 *[("GET", f"/v1/batches/{bid}/output", {"format": f})
                                   for f in ("json", "jsonl", "csv")]]:
        assert_client_error(http.request(method, path, headers=B, params=params), 404)
    listed = http.get("/v1/batches", headers=B, params={"limit": 1000}).json()["data"]
    assert bid not in {b["id"] for b in listed}
    # the same idempotency key from another tenant is that tenant's own new batch
    other = _batch(http, B, **{"Idempotency-Key": "shared-key"})
    assert other["id"] != bid
    assert http.get(f"/v1/batches/{bid}", headers=A).status_code == 200


@pytest.mark.parametrize("batch_id", ["..%2F..%2Fetc%2Fpasswd", "batch_%00", "%27%20OR%201%3D1--",
                                      "batch_" + "9" * 5000, "%E2%80%AE", "*"])
def test_hostile_batch_ids_are_404(http: httpx.Client, batch_id: str) -> None:
    for suffix in ("", "/output", "/cancel"):
        method = "POST" if suffix == "/cancel" else "GET"
        response = http.request(method, f"/v1/batches/{batch_id}{suffix}", headers=A)
        assert_client_error(response, 404, 422)


def test_oversized_bodies_are_413(http: httpx.Client) -> None:
    big = {**LABEL, "items": [{"content": "x" * 1024}] * (MAX_BODY // 1024 + 8)}
    assert_client_error(http.post("/v1/batches", json=big, headers=A), 413)
    assert_client_error(http.post("/v1/completions", json=big, headers=A), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        yield b'{"operation": "label", "categories": ["a", "b"], "items": ['
        for _ in range(MAX_BODY // 1024 + 8):
            yield b'{"content": "' + b"x" * 1024 + b'"},'
        yield b'{"content": "end"}]}'

    response = http.post("/v1/batches", content=chunks(), headers={**A, "Content-Type": "application/json"})
    assert_client_error(response, 413)
    upload = {"file": ("items.jsonl", b'{"content": "x"}\n' * (MAX_UPLOAD // 16 + 100))}
    assert_client_error(http.post("/v1/batches/upload", files=upload, data={"operation": "label"},
                                  headers=A), 413)


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b"null", b'"items"', b"\xff\xfe", b'{"operation": "label", "items": 5}',
     b"[" * 60000 + b"]" * 60000, b'{"a":' * 30000 + b"1" + b"}" * 30000],
)
def test_malformed_json_bodies_are_4xx(http: httpx.Client, body: bytes) -> None:
    for path in ("/v1/batches", "/v1/completions"):
        response = http.post(path, content=body, headers={**A, "Content-Type": "application/json"})
        assert_client_error(response)


def _multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MALFORMED_UPLOADS: list[tuple[str, bytes]] = [
    ("multipart/form-data", b"garbage"),
    ("multipart/form-data; boundary=zzz", b"--yyy\r\nnot a part\r\n--yyy--\r\n"),
    ("multipart/form-data; boundary=zzz", b"--zzz\r\nContent-Disposition: form-data\r\n\r\nx"),
    ("multipart/form-data; boundary=zzz", _multipart("zzz", [("operation", None, b"label")])),
    ("multipart/form-data; boundary=zzz", _multipart("zzz", [("file", "a.jsonl", b'{"content":"x"}\n')])),
    ("multipart/form-data; boundary=zzz", _multipart("zzz", [("file", "a.jsonl", b"\xff\x00\xfe"),
                                                              ("operation", None, b"label")])),
    ("multipart/form-data; boundary=zzz", _multipart("zzz", [("file", "a.exe", b"MZ\x90\x00"),
                                                              ("operation", None, b"label")])),
    ("multipart/form-data; boundary=zzz", _multipart("zzz", [("file", "a.jsonl", b""),
                                                              ("operation", None, b"label")])),
    ("multipart/form-data; boundary=zzz", _multipart("zzz", [
        ("file", "a.jsonl", b'{"content": "x"}\n'), ("operation", None, b"label"),
        ("fields", None, b"{not json")])),
    ("multipart/form-data; boundary=zzz", _multipart("zzz", [
        ("file", "a.json", b'[{"content": "x"}'), ("operation", None, b"label")])),
    ("multipart/form-data; boundary=zzz", _multipart("zzz", [
        ("file", "../../etc/passwd", b'{"content": "x"}\n'), ("operation", None, b"no-such-op")])),
    ("application/json", b'{"operation": "label"}'),
    ("text/plain", b"hello"),
]


@pytest.mark.parametrize(("content_type", "body"), MALFORMED_UPLOADS)
def test_malformed_multipart_uploads_are_4xx(http: httpx.Client, content_type: str, body: bytes) -> None:
    response = http.post("/v1/batches/upload", content=body, headers={**A, "Content-Type": content_type})
    assert_client_error(response)


BAD_PAGING = [{"offset": "-1"}, {"limit": "-1"}, {"limit": str(10**30)}, {"offset": str(10**30)},
              {"offset": "abc"}, {"limit": "1.5"}, {"limit": "NaN"}, {"format": "xml"},
              {"offset": str(2**63)}, {"limit": ""}, {"offset": "1e3"}]


def test_bad_paging_parameters_are_422_and_edges_are_fine(http: httpx.Client) -> None:
    bid = _batch(http)["id"]
    for params in BAD_PAGING:
        assert_client_error(http.get(f"/v1/batches/{bid}/output", headers=A, params=params), 422)
    for params in ({"limit": "-5"}, {"limit": str(10**30)}, {"limit": "x"}):
        assert_client_error(http.get("/v1/batches", headers=A, params=params), 422)
    deadline = time.monotonic() + 20
    while http.get(f"/v1/batches/{bid}", headers=A).json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for params in ({"offset": str(2**62), "limit": str(2**62)}, {"limit": "0"}, {"offset": "2"}):
        response = http.get(f"/v1/batches/{bid}/output", headers=A, params=params)
        assert response.status_code == 200, response.text
    assert http.get("/v1/batches", headers=A, params={"limit": str(2**62)}).status_code == 200


def test_oversized_or_odd_idempotency_keys_are_4xx(http: httpx.Client) -> None:
    for key in ("k" * 300, "cl\xe9".encode("latin-1"), "a\tb"):
        headers = [(b"Authorization", b"Bearer key-a"),
                   (b"Idempotency-Key", key if isinstance(key, bytes) else key.encode())]
        response = http.post("/v1/batches", json=LABEL, headers=headers)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_client_error(response)


def test_a_lone_surrogate_item_never_breaks_the_batch_or_its_output(http: httpx.Client) -> None:
    body = (b'{"operation": "label", "categories": ["a", "b"], '
            b'"items": [{"content": "\\ud800 odd"}, {"content": "great"}]}')
    response = http.post("/v1/batches", content=body, headers={**A, "Content-Type": "application/json"})
    if response.status_code != 200:
        assert_client_error(response, 422)
        return
    bid = response.json()["id"]
    deadline = time.monotonic() + 20
    while (status := http.get(f"/v1/batches/{bid}", headers=A).json()["status"]) not in (
            "completed", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    for fmt in ("json", "jsonl", "csv"):
        output = http.get(f"/v1/batches/{bid}/output", headers=A, params={"format": fmt})
        assert output.status_code == 200, output.text


def test_wrong_methods_and_content_types_use_the_envelope(http: httpx.Client) -> None:
    assert_client_error(http.delete("/v1/batches", headers=A), 405)
    assert_client_error(http.put("/v1/completions", headers=A, json=LABEL), 405)
    assert_client_error(http.get("/v1/nothing-here", headers=A), 404)
    response = http.post("/v1/batches", content=b"operation=label", headers={
        **A, "Content-Type": "application/x-www-form-urlencoded"})
    assert_client_error(response)


@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json"])
def test_an_upload_of_deeply_nested_json_is_4xx(http: httpx.Client, name: str) -> None:
    nested = b"[" * 20000 + b"]" * 20000
    data = b'{"content": "fine"}\n' + nested + b"\n" if name.endswith("l") else b"[" + nested + b"]"
    response = http.post("/v1/batches/upload", files={"file": (name, data)},
                         data={"operation": "label", "fields": '{"categories": ["a", "b"]}'},
                         headers=A)
    if response.status_code == 200:  # accepted: the nested line must be a failed row, not a crash
        return
    assert_client_error(response)
