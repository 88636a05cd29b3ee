"""The API of the real server: tokens, cross-site and oversized requests, config messages."""

from __future__ import annotations

import urllib.request

import pytest
from serving import cli, start_server

from convbench.store import Store


def test_non_loopback_server_refuses_calls_without_the_token(tmp_path):
    server = start_server(tmp_path / "runs.db", host="0.0.0.0")
    try:
        assert server.token and f"token={server.token}" in server.banner
        assert server.call("/api/runs")[0] == 200  # with the printed token
        status, body = server.call("/api/runs", token="wrong-token-123")
        assert status == 401 and "token" in body["error"]
        server.token = None
        for path in ("/api/runs", "/api/meta", "/api/events", "/api/runs/abc/live"):
            assert server.call(path)[0] == 401, path
        assert server.call("/api/train", {"train.epochs": "1"})[0] == 401
        assert server.call("/api/runs", token=None)[0] == 401
        # The page itself loads (it holds no data); its API calls carry the token.
        with urllib.request.urlopen(server.base + "/") as response:
            assert response.status == 200
    finally:
        server.stop()
    assert server.process.returncode is not None


def test_cross_site_and_malformed_writes_are_refused(server):
    evil = {"Origin": "http://evil.example"}
    assert server.call("/api/check", {"train.epochs": "2"}, headers=evil)[0] == 403
    assert server.call("/api/check", {"x": "y" * 300_000})[0] == 413
    request = urllib.request.Request(server.base + "/api/train", data=b"train.epochs=2",
                                     method="POST")  # a plain form post: no JSON
    try:
        urllib.request.urlopen(request)
        raise AssertionError("a form post was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 415
    # A page served under another host name (DNS rebinding) gets nothing.
    assert server.call("/api/runs", headers={"Host": "evil.example:80"})[0] == 403
    assert server.call("/api/runs")[1] == {"total": 0, "runs": []}


def test_bad_config_gets_the_cli_message_and_starts_nothing(server, tmp_path):
    status, body = server.call("/api/train", {"data.dataset": "digits", "train.epochs": "0"})
    said = cli("train", "--set", "data.dataset=digits", "--set", "train.epochs=0",
               store=tmp_path / "cli.db", check=False)
    assert said.returncode == 2
    assert status == 422 and said.stderr.strip() == f"error: {body['error']}"
    assert body["errors"][0]["field"] == "train.epochs"
    status, body = server.call("/api/train", {"model.name": "no-such-net"})
    assert status == 422 and body["errors"][0]["field"] == "model.name"
    assert "convbench models" in body["error"]
    assert server.call("/api/jobs")[1] == [] and server.call("/api/runs")[1]["total"] == 0


def test_unknown_runs_and_bad_listings_are_4xx(server):
    status, body = server.call("/api/runs/deadbeef")
    assert status == 404 and "No run id starts with 'deadbeef'" in body["error"]
    assert server.call("/api/runs?sort=config")[0] == 400
    assert server.call("/api/runs/deadbeef/pause", {})[0] == 404
    assert server.call("/api/runs/deadbeef/artifacts/log")[0] == 404


@pytest.mark.postgres
def test_runs_and_live_snapshot_from_a_postgresql_store(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_ARTIFACTS", str(tmp_path / "artifacts"))
    with Store(postgres_url) as store:
        done = store.create_run(name="done", config={"data": {"dataset": "digits"}, "model": {
            "name": "blocks", "blocks": 2, "base_filters": 8}}, seed=0, env={})
        store.update(done, status="completed", metrics={"test_accuracy": 0.9}, ended=True)
        running = store.create_run(name="busy", config={}, seed=1, env={})
        store.add_epoch(running, 1, {"val_accuracy": 0.5})
    server = start_server(postgres_url)
    try:
        listing = server.call("/api/runs?sort=test_accuracy")[1]
        assert [r["name"] for r in listing["runs"]] == ["done", "busy"]
        assert listing["runs"][0]["model"] == "B2FL8"
        assert server.call("/api/runs?q=b2fl8")[1]["total"] == 1
        assert server.call(f"/api/runs/{running}")[1]["epochs"][0]["val_accuracy"] == 0.5
        assert server.call(f"/api/compare?ids={done},{running}")[0] == 200
    finally:
        server.stop()
