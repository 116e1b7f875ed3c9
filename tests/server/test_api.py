"""The HTTP API as a client sees it: status codes, error bodies, tenants, limits."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentflow_jobs.errors import ConfigError
from agentflow_jobs.server import create_app
from tests.fakes.handles import FakeProvider
from tests.fakes.metered import fixed_usage
from tests.server.live import LiveServer, live_server, provider_config

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}
LABEL = {"operation": "label", "categories": ["positive", "negative"],
         "items": [{"content": "great"}, {"content": "awful"}, {"content": "good"}]}


@pytest.fixture
def server(fake_provider: FakeProvider, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(fake_provider.base_url, tmp_path / "store.db", max_body_bytes=64 * 1024,
                     max_upload_bytes=32 * 1024) as live:
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


def wait_done(http: httpx.Client, batch_id: str, headers: dict[str, str] = A) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        batch: dict[str, Any] = http.get(f"/v1/batches/{batch_id}", headers=headers).json()
        if batch["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def test_missing_or_wrong_key_is_401_with_challenge(http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic a2V5LWE="}):
        response = http.post("/v1/batches", json=LABEL, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert error_of(response)["code"] == "unauthorized"
        assert "key-a" not in response.text
    assert http.get("/metrics").status_code == 401
    assert http.get("/healthz").json() == {"status": "ok"}


def test_each_key_sees_only_its_own_batches(http: httpx.Client) -> None:
    batch = http.post("/v1/batches", json=LABEL, headers=A).json()
    for path in (f"/v1/batches/{batch['id']}", f"/v1/batches/{batch['id']}/output"):
        response = http.get(path, headers=B)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert http.post(f"/v1/batches/{batch['id']}/cancel", headers=B).status_code == 404
    assert http.get("/v1/batches", headers=B).json()["data"] == []
    assert [b["id"] for b in http.get("/v1/batches", headers=A).json()["data"]] == [batch["id"]]


def test_idempotency_key_replay_and_conflict(http: httpx.Client, fake_provider: FakeProvider) -> None:
    headers = {**A, "Idempotency-Key": "job-1/chunk-0"}
    first = http.post("/v1/batches", json=LABEL, headers=headers)
    replay = http.post("/v1/batches", json=LABEL, headers=headers)
    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.json()["id"] == first.json()["id"]
    other = http.post("/v1/batches", json={**LABEL, "items": LABEL["items"][:1]}, headers=headers)
    assert other.status_code == 409 and error_of(other)["code"] == "conflict"
    # the same key from another tenant is that tenant's own key
    assert http.post("/v1/batches", json=LABEL, headers={**B, "Idempotency-Key": "job-1/chunk-0"}).json()["id"] != first.json()["id"]
    wait_done(http, first.json()["id"])
    assert len(http.get("/v1/batches", headers=A).json()["data"]) == 1


def test_validation_errors_name_the_field(http: httpx.Client) -> None:
    cases = [
        ({**LABEL, "categories": ["one"]}, "categories"),
        ({**LABEL, "catgories": ["a", "b"]}, "catgories"),
        ({**LABEL, "items": "nope"}, "items"),
        ({"operation": "enrich", "items": [], "fields": [{"name": "x", "type": "categorical"}]}, "fields.0"),
    ]
    for body, field in cases:
        response = http.post("/v1/completions", json=body, headers=A)
        assert response.status_code == 422, body
        error = error_of(response)
        assert error["code"] == "validation_error" and field in error["message"], error
    broken = http.post("/v1/batches", content=b"{not json", headers={**A, "Content-Type": "application/json"})
    assert broken.status_code == 422 and error_of(broken)["code"] == "validation_error"
    assert error_of(broken)["message"].startswith("request body is not valid JSON (line 1, column 2")
    multiline = http.post("/v1/batches", content=b'{\n  "operation": "label",\n  oops\n}',
                          headers={**A, "Content-Type": "application/json"})
    assert error_of(multiline)["message"].startswith("request body is not valid JSON (line 3, column 3")
    deep = http.post("/v1/batches", content=b'{"items": ' + b"[" * 5_000,
                     headers={**A, "Content-Type": "application/json"})
    assert deep.status_code == 422 and error_of(deep)["code"] == "validation_error", deep.text
    assert error_of(deep)["message"] == "request body is not valid JSON (nested too deeply)"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("in.jsonl", b'{"content": "great"}\n{"content": "awful"}\n'),
        ("in.csv", b"content,id\ngreat,r1\nawful,r2\n"),
        ("in.json", b'[{"content": "great"}, {"content": "awful"}]'),
    ],
)
def test_upload_files(http: httpx.Client, name: str, data: bytes) -> None:
    form = {"operation": "classify", "fields": json.dumps({"categories": ["positive", "negative"]}),
            "metadata": json.dumps({"source": name})}
    response = http.post("/v1/batches/upload", headers=A, data=form, files={"file": (name, data)})
    assert response.status_code == 200, response.text
    batch = response.json()
    assert batch["total_items"] == 2 and batch["metadata"] == {"source": name}
    assert wait_done(http, batch["id"])["status"] == "completed"
    rows = http.get(f"/v1/batches/{batch['id']}/output", headers=A).json()["results"]
    assert [r["result"]["label"] for r in rows] == ["positive", "negative"]


def test_bad_uploads_are_client_errors(http: httpx.Client) -> None:
    form = {"operation": "summarize", "fields": json.dumps({"summary_instructions": "short"})}
    cases = [
        ({"file": ("x.jsonl", b'{"content": "a"}\n{oops\n')}, form, 422, "x.jsonl:2"),
        ({"file": ("x.xlsx", b"PK")}, form, 422, "unsupported"),
        ({"file": ("x.jsonl", b'{"content": "a"}')}, {**form, "fields": "{nope"}, 422, "fields"),
        ({"file": ("x.jsonl", b'{"content": "a"}')}, {**form, "fields": "[" * 5_000}, 422, "nested too deeply"),
        ({"file": ("x.jsonl", b'{"content": "a"}')}, {"fields": form["fields"]}, 422, "operation"),
        (None, form, 422, "file"),
        ({"file": ("x.jsonl", b"x" * 40 * 1024)}, form, 413, "limit"),
    ]
    for files, data, status, words in cases:
        response = http.post("/v1/batches/upload", headers=A, data=data, files=files)
        assert response.status_code == status, (words, response.text)
        assert words in error_of(response)["message"]
    garbled = http.post("/v1/batches/upload", content=b"--xx\r\nnot multipart at all",
                        headers={**A, "Content-Type": "multipart/form-data; boundary=xx"})
    assert garbled.status_code in (400, 422) and error_of(garbled)


def test_paging_edges(http: httpx.Client) -> None:
    batch_id = http.post("/v1/batches", json=LABEL, headers=A).json()["id"]
    wait_done(http, batch_id)
    url = f"/v1/batches/{batch_id}/output"

    past = http.get(url, params={"offset": 10}, headers=A).json()
    assert (past["results"], past["total"], past["offset"]) == ([], 3, 10)
    zero = http.get(url, params={"limit": 0}, headers=A).json()
    assert (zero["results"], zero["limit"], zero["total"]) == ([], 0, 3)
    huge = http.get(url, params={"limit": 10**12}, headers=A).json()
    assert huge["limit"] == 10_000 and [r["index"] for r in huge["results"]] == [0, 1, 2]
    for params in ({"offset": -1}, {"limit": -5}, {"format": "xml"}, {"limit": "many"}):
        response = http.get(url, params=params, headers=A)
        assert response.status_code == 422 and next(iter(params)) in error_of(response)["message"]


def test_jsonl_and_csv_stream_as_attachments(http: httpx.Client) -> None:
    batch_id = http.post("/v1/batches", json={**LABEL, "id_field": "sku",
                                              "items": [{"content": "great", "sku": "A1"}]},
                         headers=A).json()["id"]
    wait_done(http, batch_id)
    jsonl = http.get(f"/v1/batches/{batch_id}/output", params={"format": "jsonl"}, headers=A)
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert json.loads(jsonl.text)["id"] == "A1"
    table = http.get(f"/v1/batches/{batch_id}/output", params={"format": "csv"}, headers=A)
    assert "attachment" in table.headers["content-disposition"]
    assert table.text.splitlines()[1].startswith("0,A1,completed,positive,")


def test_oversized_bodies_are_413(http: httpx.Client) -> None:
    big = {**LABEL, "items": [{"content": "x" * 1000}] * 100}
    response = http.post("/v1/batches", json=big, headers=A)
    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield json.dumps(big).encode()

    streamed = http.post("/v1/batches", content=chunks(), headers={**A, "Content-Type": "application/json"})
    assert streamed.status_code == 413 and error_of(streamed)["code"] == "payload_too_large"


def test_unknown_routes_and_methods_use_the_error_envelope(http: httpx.Client) -> None:
    assert error_of(http.get("/v1/nothing", headers=A))["code"] == "not_found"
    assert error_of(http.delete("/v1/batches", headers=A))["code"] == "method_not_allowed"
    assert http.get("/v1/batches/x/output", headers=A).headers["x-request-id"].startswith("req_")


def test_metrics_in_prometheus_text(http: httpx.Client, fake_provider: FakeProvider) -> None:
    fake_provider.script(status=400, match="awful")
    batch_id = http.post("/v1/batches", json=LABEL, headers=A).json()["id"]
    wait_done(http, batch_id)
    text = http.get("/metrics", headers=A).text
    assert 'agentflow_batches{status="completed"} 1' in text
    assert 'agentflow_items_processed_total{status="completed"} 2' in text
    assert 'agentflow_items_processed_total{status="failed"} 1' in text
    assert 'agentflow_provider_errors_total{code="bad_request"} 1' in text
    assert "# TYPE agentflow_http_request_duration_seconds histogram" in text
    assert 'agentflow_http_request_duration_seconds_bucket{le="+Inf"}' in text


def test_metrics_carry_spend_per_tenant_and_model(
    http: httpx.Client, fake_provider: FakeProvider
) -> None:
    priced = {**LABEL, "model": "gpt-4o-mini"}
    with fixed_usage(fake_provider, 1_000_000, 100_000):  # $0.15 + $0.06 an item
        assert http.post("/v1/completions", json=priced, headers=A).status_code == 200
        batch_id = http.post("/v1/batches", json=priced, headers=B).json()["id"]
        wait_done(http, batch_id, B)
        http.post("/v1/completions", json=LABEL, headers=A)  # fake-model: no known price
    text = http.get("/metrics", headers=A).text
    assert "# TYPE agentflow_spend_usd_total counter" in text
    spend = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("agentflow_spend_usd_total{", "agentflow_unpriced_items_total{"))
    }
    a, b = (hashlib.sha256(key).hexdigest()[:12] for key in (b"key-a", b"key-b"))
    assert spend[f'agentflow_spend_usd_total{{tenant="{a}",model="gpt-4o-mini"}}'] == pytest.approx(0.63)
    assert spend[f'agentflow_spend_usd_total{{tenant="{b}",model="gpt-4o-mini"}}'] == pytest.approx(0.63)
    assert spend[f'agentflow_unpriced_items_total{{tenant="{a}",model="fake-model"}}'] == 3
    assert spend[f'agentflow_spend_usd_total{{tenant="{a}",model="fake-model"}}'] == 0
    assert "key-a" not in text and hashlib.sha256(b"key-a").hexdigest() not in text


def test_refuses_to_start_without_keys(tmp_path: Path) -> None:
    config = provider_config("http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="--no-auth"):
        create_app(provider_config=config, store_path=tmp_path / "s.db")
    create_app(provider_config=config, store_path=tmp_path / "s.db", no_auth=True)


def test_no_auth_accepts_anyone(fake_provider: FakeProvider, tmp_path: Path) -> None:
    app = create_app(provider_config=provider_config(fake_provider.base_url),
                     store_path=tmp_path / "s.db", no_auth=True)
    server = LiveServer(app)
    try:
        response = httpx.post(f"{server.url}/v1/completions", json=LABEL, timeout=10)
        assert [r["result"]["label"] for r in response.json()["results"]] == ["positive", "negative", "positive"]
    finally:
        server.stop()
