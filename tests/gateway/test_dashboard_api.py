"""The dashboard's ``/api/`` endpoints: the CLI's JSON, behind the API's keys, in both servers."""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from factories import attempt_event, task_event
from rolecall._secrets import Secret
from rolecall.cli import main
from rolecall.config.schema import RolecallConfig
from rolecall.dashboard.server import DashboardServer
from rolecall.gateway.app import Gateway
from rolecall.recording.store import open_store
from rolecall.recording.store.synthetic import synthetic_attempts

KEY = "dashboard-test-key-0123456789"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    with open_store(url) as store:
        store.record(list(synthetic_attempts(400, end=time.time(), days=2, calls_per_run=100)))
    return url


@pytest.fixture
def dashboard(store_url: str) -> Iterator[DashboardServer]:
    server = DashboardServer(store_url).start()
    yield server
    server.stop()


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            body = response.read()
            kind = response.headers.get("content-type", "")
            return response.status, json.loads(body) if "json" in kind else body
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_endpoints_serve_what_the_cli_prints(
    dashboard: DashboardServer, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    since = int(time.time() - 86400)
    status, metrics = _get(f"{dashboard.url}/api/metrics?since={since}")
    assert status == 200 and metrics
    cli = _cli_json(capsys, "metrics", "--format", "json", "--store", store_url, "--since", "24h")
    assert metrics == cli
    _, trend = _get(f"{dashboard.url}/api/trend?bucket=day")
    assert trend == _cli_json(
        capsys, "metrics", "trend", "--json", "--store", store_url, "--since", "3650d"
    )
    _, advice = _get(f"{dashboard.url}/api/advise")
    assert advice == _cli_json(capsys, "metrics", "advise", "--json", "--store", store_url)
    _, runs = _get(f"{dashboard.url}/api/runs?limit=3")
    assert runs == _cli_json(capsys, "runs", "list", "--json", "-n", "3", "--store", store_url)
    run_id = runs[0]["run_id"]
    _, run = _get(f"{dashboard.url}/api/runs/{run_id}")
    assert run == _cli_json(capsys, "runs", "show", run_id, "--json", "--store", store_url)
    _, handovers = _get(f"{dashboard.url}/api/handovers")
    assert sum(row["handovers"] for row in handovers) > 0
    assert _get(f"{dashboard.url}/api/health") == (200, {"live": False, "providers": {}})


def test_bad_requests_get_one_line_errors(dashboard: DashboardServer) -> None:
    status, body = _get(f"{dashboard.url}/api/metrics?since=yesterday")
    assert status == 400 and "epoch seconds" in body["error"]
    assert _get(f"{dashboard.url}/api/trend?bucket=week")[0] == 400
    assert _get(f"{dashboard.url}/api/nothing")[0] == 404
    assert _get(f"{dashboard.url}/api/runs/no-such-run")[0] == 404


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("metrics?since=99999999999999999999999", "since"),
        ("metrics?until=1e400", "until"),
        ("metrics?until=nan", "until"),
        ("trend?since=-1e300", "since"),
        ("advise?until=1e20", "until"),
        ("handovers?since=inf", "since"),
        ("runs?limit=%C2%B2", "limit"),
    ],
)
def test_out_of_range_parameters_get_a_400_naming_them(
    dashboard: DashboardServer, query: str, name: str
) -> None:
    status, body = _get(f"{dashboard.url}/api/{query}")
    assert status == 400
    assert body["error"].startswith(f"{name}=") and "\n" not in body["error"]
    assert _get(f"{dashboard.url}/api/health")[0] == 200  # the server is still up


@pytest.mark.parametrize("endpoint", ["metrics", "trend", "advise", "handovers"])
def test_a_window_that_ends_before_it_starts_is_a_400_like_the_cli(
    dashboard: DashboardServer, endpoint: str, tmp_path: Path
) -> None:
    status, body = _get(f"{dashboard.url}/api/{endpoint}?since=1767225600&until=1767139200")
    assert status == 400
    assert body == {"error": "since=1767225600 must be earlier than until=1767139200"}
    assert _get(f"{dashboard.url}/api/{endpoint}?since=1767139200&until=1767225600")[0] == 200
    empty = DashboardServer(f"sqlite:///{tmp_path / 'none-yet.db'}").start()
    try:  # no store yet: the same answer, not an empty list
        assert _get(f"{empty.url}/api/{endpoint}?since=1767225600&until=1767225600")[0] == 400
    finally:
        empty.stop()


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("trend?bucket=week", "bucket"),
        ("trend?by=model", "by"),
        ("runs?limit=0", "limit"),
        ("runs?limit=ten", "limit"),
        ("advise?min_requests=-5", "min_requests"),
    ],
)
def test_a_bad_parameter_is_a_400_before_any_store_exists(
    tmp_path: Path, query: str, name: str
) -> None:
    empty = DashboardServer(f"sqlite:///{tmp_path / 'none-yet.db'}").start()
    try:  # the same answer as with a store, not 200 [] until the first call is recorded
        status, body = _get(f"{empty.url}/api/{query}")
        assert status == 400 and body["error"].startswith(f"{name}=")
        good = query.partition("?")[0]
        assert _get(f"{empty.url}/api/{good}") == (200, [])
    finally:
        empty.stop()
    assert not (tmp_path / "none-yet.db").exists()


def test_a_store_it_cannot_open_is_a_503_not_a_dropped_connection() -> None:
    server = DashboardServer("mongodb://x").start()
    try:
        status, body = _get(f"{server.url}/api/metrics")
        assert status == 503 and "unsupported metrics store URL 'mongodb://x'" in body["error"]
    finally:
        server.stop()


def test_a_store_missing_a_table_is_a_503_naming_the_fix(store_url: str) -> None:
    path = store_url[len("sqlite:///") :]
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE runs")
    conn.commit()
    conn.close()
    server = DashboardServer(store_url).start()
    try:
        status, body = _get(f"{server.url}/api/runs")
        assert status == 503 and "no such table: runs" in body["error"]
        assert "move it aside" in body["error"]
        assert _get(f"{server.url}/api/metrics")[0] == 200  # what is whole still reads
    finally:
        server.stop()


def test_the_page_and_its_assets_ship_in_the_package(dashboard: DashboardServer) -> None:
    status, page = _get(f"{dashboard.url}/ui")
    assert status == 200 and b"/ui/app.js" in page
    assert b"<svg" in _get(f"{dashboard.url}/ui/app.js")[1]
    assert _get(f"{dashboard.url}/ui/style.css")[0] == 200
    assert b"http" not in page.replace(b"http-equiv", b"")  # nothing loaded from elsewhere


def test_dashboard_data_needs_a_key_when_keys_are_set(store_url: str) -> None:
    server = DashboardServer(store_url, keys=[Secret(KEY)]).start()
    try:
        assert _get(f"{server.url}/api/metrics")[0] == 401
        assert _get(f"{server.url}/api/metrics", "wrong")[0] == 401
        assert _get(f"{server.url}/api/metrics", KEY)[0] == 200
        assert _get(f"{server.url}/ui")[0] == 200  # the page holds no data
    finally:
        server.stop()


def test_dashboard_refuses_a_public_address_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
    assert main(["dashboard", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "gateway.keys" in capsys.readouterr().err


def test_dashboard_refuses_an_unsupported_store_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)

    def serve_forever(self: DashboardServer) -> None:
        pytest.fail("the dashboard started with a store it cannot read")

    monkeypatch.setattr(DashboardServer, "serve_forever", serve_forever)
    assert main(["dashboard", "--store", "mongodb://u:pw-secret-9@x/db", "--port", "0"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --store: unsupported metrics store URL")
    assert "sqlite:///" in line and "pw-secret-9" not in line


def _gateway(tmp_path: Path, store_url: str, keys: tuple[str, ...] = (KEY,)) -> Gateway:
    config = RolecallConfig.model_validate(
        {
            "providers": {
                "local": {
                    "type": "openai",
                    "model": "m",
                    "api_key": "k",
                    "base_url": "http://127.0.0.1:9/v1",
                }
            },
            "default_provider": "local",
            "gateway": {"keys": list(keys)},
            "metrics": {"url": store_url, "runs_dir": str(tmp_path / "runs")},
        }
    )
    return Gateway(config, offline=True, record=False)


def test_gateway_serves_the_page_and_guards_its_data(tmp_path: Path, store_url: str) -> None:
    with TestClient(_gateway(tmp_path, store_url).app) as client:
        page = client.get("/ui")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert client.get("/api/metrics").status_code == 401
        auth = {"authorization": f"Bearer {KEY}"}
        metrics = client.get("/api/metrics", headers=auth)
        assert metrics.status_code == 200 and len(metrics.json()) > 0
        health = client.get("/api/health", headers=auth).json()
        assert health["live"] is True


ODD_RUN_ID = "nightly run #3?part=1 100%\\done"


def _record_odd_run(store_url: str) -> None:
    with open_store(store_url) as store:
        store.start_run(ODD_RUN_ID, kind="workflow")
        attempts = synthetic_attempts(3, end=time.time(), days=0.01, calls_per_run=10)
        store.record([replace(attempt, run_id=ODD_RUN_ID) for attempt in attempts])
        store.finish_run(ODD_RUN_ID, "ok")


def test_a_run_whose_id_needs_encoding_opens_in_both_servers(
    tmp_path: Path, store_url: str, dashboard: DashboardServer
) -> None:
    # The page asks for /api/runs/<encodeURIComponent(run id)>.
    _record_odd_run(store_url)
    path = "/api/runs/" + urllib.parse.quote(ODD_RUN_ID, safe="")
    status, run = _get(dashboard.url + path)
    assert status == 200 and run["run_id"] == ODD_RUN_ID and len(run["tasks"]) == 3
    with TestClient(_gateway(tmp_path, store_url).app) as client:
        answer = client.get(path, headers={"authorization": f"Bearer {KEY}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["run_id"] == ODD_RUN_ID


def test_a_store_moved_aside_or_deleted_under_a_running_dashboard_is_not_read_on(
    store_url: str, dashboard: DashboardServer
) -> None:
    path = Path(store_url[len("sqlite:///") :])
    before = _get(f"{dashboard.url}/api/runs?limit=100")[1]
    assert len(before) == 4
    for suffix in ("", "-wal", "-shm"):  # moved aside, as a damaged store's message advises
        if Path(f"{path}{suffix}").exists():
            Path(f"{path}{suffix}").rename(f"{path}.old{suffix}")
    with open_store(store_url) as store:  # a new store starts there
        store.record(list(synthetic_attempts(5, end=time.time(), days=0.01, calls_per_run=10)))
    assert len(_get(f"{dashboard.url}/api/runs?limit=100")[1]) == 1
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert _get(f"{dashboard.url}/api/runs")[1] == []
    assert _get(f"{dashboard.url}/api/metrics")[1] == []


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_dashboard_listens_on_ipv6_loopback(store_url: str) -> None:
    server = DashboardServer(store_url, host="::1").start()
    try:
        assert server.url.startswith("http://[::1]:")
        status, runs = _get(f"{server.url}/api/runs")
        assert status == 200 and len(runs) == 4
    finally:
        server.stop()


def test_dashboard_names_the_option_to_change_when_it_cannot_listen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "rolecall.yaml"
    config.write_text(
        "providers: {local: {type: local}}\n"
        f"default_provider: local\ngateway: {{keys: ['{KEY}']}}\n",
        encoding="utf-8",
    )
    store = f"sqlite:///{tmp_path / 'none.db'}"
    args = ["dashboard", "-c", str(config), "--store", store, "--port", "0"]
    assert main([*args, "--host", "no-such-host.invalid"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "no-such-host.invalid" in line and "give --host an address of this machine" in line
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main([*args[:-1], port, "--host", "127.0.0.1"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert f"127.0.0.1:{port}" in line and line.endswith("pick another --port")


def _get_as(url: str, host: str) -> tuple[int, Any]:
    """GET ``url`` with the Host header a browser sends for a page at ``host``."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=10)
    try:
        connection.request("GET", urllib.parse.urlsplit(url).path, headers={"host": host})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_keyless_dashboard_gives_no_data_to_a_page_under_another_name(
    tmp_path: Path, store_url: str, dashboard: DashboardServer
) -> None:
    # A web page whose own name now resolves to 127.0.0.1 (DNS rebinding) reads as that name.
    port = dashboard.url.rsplit(":", 1)[1]
    status, body = _get_as(f"{dashboard.url}/api/runs", f"evil.example:{port}")
    assert status == 403 and "evil.example" in body["error"] and "127.0.0.1" in body["error"]
    for name in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert _get_as(f"{dashboard.url}/api/runs", name)[0] == 200, name
    keyless = _gateway(tmp_path, store_url, keys=())
    with TestClient(keyless.app, base_url="http://evil.example:4141") as client:
        assert client.get("/api/runs").status_code == 403
    with TestClient(keyless.app, base_url="http://127.0.0.1:4141") as client:
        assert client.get("/api/runs").status_code == 200


def test_the_page_runs_only_its_own_script_and_no_site_frames_it(
    tmp_path: Path, store_url: str, dashboard: DashboardServer
) -> None:
    def check(headers: Any) -> None:
        policy = headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "default-src 'none'" in policy and "unsafe-inline" not in policy.split(";")[1]
        assert headers["x-content-type-options"] == "nosniff"

    for name in ("/ui", "/ui/app.js", "/ui/style.css"):
        with urllib.request.urlopen(dashboard.url + name) as response:
            check(response.headers)
    with urllib.request.urlopen(dashboard.url + "/api/runs") as response:
        assert response.headers["x-content-type-options"] == "nosniff"
    with TestClient(_gateway(tmp_path, store_url).app) as client:
        check(client.get("/ui").headers)
        api = client.get("/api/runs", headers={"authorization": f"Bearer {KEY}"})
        assert api.headers["x-content-type-options"] == "nosniff"


def _request(url: str, method: str) -> tuple[http.client.HTTPResponse, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request(method, parts.path)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/ui", "/ui/app.js", "/api/metrics"])
def test_dashboard_refuses_other_methods_with_405_and_what_it_allows(
    dashboard: DashboardServer, method: str, path: str
) -> None:
    parts = urllib.parse.urlsplit(dashboard.url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request(method, path, body=b"{}" if method != "OPTIONS" else None)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": f"{method} is not served here: {path} answers GET and HEAD only"
    }


def test_dashboard_answers_head_like_get_without_a_body(dashboard: DashboardServer) -> None:
    for path, status in (("/ui", 200), ("/api/metrics", 200), ("/", 302), ("/nope", 404)):
        response, body = _request(dashboard.url + path, "HEAD")
        assert (response.status, body) == (status, b""), path
        _, got_body = _request(dashboard.url + path, "GET")
        assert response.headers["content-length"] == str(len(got_body)), path


def test_dashboard_names_itself_without_a_trailing_space(dashboard: DashboardServer) -> None:
    assert _request(dashboard.url + "/ui", "GET")[0].headers["server"] == "rolecall"
    assert _request(dashboard.url + "/ui", "BREW")[0].headers["server"] == "rolecall"


def test_dashboard_answers_what_it_cannot_parse_in_one_line_of_text(
    dashboard: DashboardServer,
) -> None:
    response, body = _request(dashboard.url + "/ui", "BREW")
    assert response.status == 501
    assert response.headers["content-type"].startswith("text/plain")
    assert body == b"501 Unsupported method ('BREW')\n"


def test_gateway_names_the_methods_a_path_takes_in_its_405(tmp_path: Path, store_url: str) -> None:
    with TestClient(_gateway(tmp_path, store_url).app) as client:
        for method, path, allowed in (
            ("POST", "/ui", "GET, HEAD"),
            ("DELETE", "/api/metrics", "GET, HEAD"),
            ("PUT", "/healthz", "GET, HEAD"),
            ("GET", "/v1/chat/completions", "POST"),
        ):
            answer = client.request(method, path)
            assert answer.status_code == 405, (method, path)
            methods = {name.strip() for name in answer.headers["allow"].split(",")}
            assert methods == set(allowed.split(", ")), (method, path)
            assert f"no route {method} {path}" in answer.json()["error"]["message"]


def test_a_run_of_many_tasks_comes_as_its_newest_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gateway run holds up to 100,000 tasks: the page gets the newest ``limit`` (1000
    by default) and how many there are, not a body of every task."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    with open_store(url) as store:
        store.start_run("gw", "gateway", started_at=1_767_225_600.0)
        store.record(
            [
                make(run_id="gw", task_id=f"call-{number}", ts=1_767_225_600.0 + number)
                for number in range(1005)
                for make in (attempt_event, task_event)
            ]
        )
    server = DashboardServer(url).start()
    try:
        status, run = _get(f"{server.url}/api/runs/gw")
        assert status == 200 and run["tasks_total"] == 1005 and len(run["tasks"]) == 1000
        assert run["tasks"][0]["task_id"] == "call-5"
        _, last = _get(f"{server.url}/api/runs/gw?limit=3")
        whole = _cli_json(capsys, "runs", "show", "gw", "--json", "--store", url)
        assert last == {**whole, "tasks": whole["tasks"][-3:], "tasks_total": 1005}
        assert _get(f"{server.url}/api/runs/gw?limit=0")[0] == 400
    finally:
        server.stop()
