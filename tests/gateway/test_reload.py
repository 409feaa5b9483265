"""Hot reload: a changed assignment takes effect with no restart; a bad edit changes nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from gateway_helpers import (
    FALLBACK_KEY,
    GATEWAY_KEY,
    PRIMARY_KEY,
    RunningGateway,
    config_text,
    wait_for,
)

from descriptor_helpers import no_descriptor_left
from rolecall.config.schema import RolecallConfig
from rolecall.gateway.reload import ConfigWatcher
from rolecall.sim import Fault, SimServer
from serve_helpers import serving_process

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}


def answer(client: httpx.Client) -> httpx.Response:
    response = client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200, response.text
    return response


def generation(client: httpx.Client) -> int:
    return int(client.get("/healthz").json()["config_generation"])


def test_changed_provider_is_used_by_the_next_request(
    gateway: RunningGateway,
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
) -> None:
    with gateway.client() as client:
        assert answer(client).headers["x-rolecall-provider"] == "a"
        config_path.write_text(config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path))
        wait_for(lambda: generation(client) == 2)
        response = answer(client)
        assert response.headers["x-rolecall-provider"] == "b"
        assert response.json()["choices"][0]["message"]["content"] == "answer from B"
        assert primary.calls == 1
        metrics = client.get("/metrics").text
        assert 'rolecall_config_reloads_total{result="ok"} 1' in metrics


def test_invalid_edit_keeps_the_old_config_and_says_why(
    gateway: RunningGateway,
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rolecall.gateway")
    good = config_path.read_text()
    # An undefined provider and an out-of-range temperature: both must be reported.
    bad = config_text(
        primary, fallback, coder="{provider: nosuch, params: {temperature: 7}}", tmp=tmp_path
    )
    config_path.write_text(bad)
    wait_for(lambda: any("invalid" in r.getMessage() for r in caplog.records))
    time.sleep(0.2)  # several more polls: the same bad content is reported once
    warnings = [r.getMessage() for r in caplog.records if r.name == "rolecall.gateway"]
    assert len(warnings) == 1
    assert "\n" not in warnings[0]
    assert "nosuch" in warnings[0] and "temperature" in warnings[0]
    assert "keeping the previous config" in warnings[0]
    with gateway.client() as client:
        assert generation(client) == 1
        assert answer(client).headers["x-rolecall-provider"] == "a"
        # Broken YAML too.
        config_path.write_text(good + "\nroles: [unclosed\n")
        wait_for(lambda: len([r for r in caplog.records if r.name == "rolecall.gateway"]) == 2)
        assert answer(client).headers["x-rolecall-provider"] == "a"
        # A fixed file is picked up again.
        config_path.write_text(config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path))
        wait_for(lambda: generation(client) == 2)
        assert answer(client).headers["x-rolecall-provider"] == "b"


def test_an_edit_broken_everywhere_is_one_warning_of_twenty_problems(
    gateway: RunningGateway,
    config_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rolecall.gateway")
    broken = "".join(f"  p{i}: {{type: local, timeout: soon}}\n" for i in range(60))
    config_path.write_text(f"providers:\n{broken}default_provider: p0\n")
    wait_for(lambda: any("invalid" in r.getMessage() for r in caplog.records))
    [warning] = [r.getMessage() for r in caplog.records if r.name == "rolecall.gateway"]
    assert warning.count("invalid duration 'soon'") == 20
    assert warning.endswith("; ... 40 more")


def test_rejected_credentials_keep_the_old_config(
    gateway: RunningGateway,
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rolecall.gateway")
    text = config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path)
    config_path.write_text(text.replace("${FALLBACK_KEY}", "sk-revoked-key-00000009"))
    wait_for(lambda: any("not applied" in r.getMessage() for r in caplog.records))
    assert "sk-revoked-key-00000009" not in caplog.text
    with gateway.client() as client:
        assert generation(client) == 1
        assert answer(client).headers["x-rolecall-provider"] == "a"


def test_request_in_flight_finishes_on_the_old_router(
    gateway: RunningGateway,
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
) -> None:
    release = threading.Event()

    async def held_answer(body: object) -> str:
        await asyncio.to_thread(release.wait, 10)  # on the sim's loop: wait without blocking it
        return "answer from A"

    primary.responder = held_answer
    slow: dict[str, httpx.Response] = {}

    def call() -> None:
        with gateway.client() as client:
            slow["response"] = answer(client)

    worker = threading.Thread(target=call)
    worker.start()
    wait_for(lambda: primary.calls == 1)
    old = gateway.gateway.generation
    config_path.write_text(config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path))
    with gateway.client() as client:
        wait_for(lambda: generation(client) == 2)
        assert answer(client).headers["x-rolecall-provider"] == "b"
    assert old.retired and old.in_flight == 1  # still serving the held request
    release.set()
    worker.join(10)
    assert slow["response"].headers["x-rolecall-provider"] == "a"
    assert slow["response"].json()["choices"][0]["message"]["content"] == "answer from A"
    wait_for(lambda: old.in_flight == 0)


def test_rotated_gateway_key_in_dotenv_takes_effect(
    gateway: RunningGateway, config_path: Path
) -> None:
    new_key = "gw-rotated-gateway-key-0004"
    (config_path.parent / ".env").write_text(
        f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\nGATEWAY_KEY={new_key}\n"
    )
    with gateway.client(key=new_key) as client:
        wait_for(lambda: generation(client) == 2)
        assert answer(client).status_code == 200
    with gateway.client(key=GATEWAY_KEY) as client:
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 401


def test_sighup_makes_rolecall_serve_read_an_edit_and_keep_serving(
    config_path: Path, primary: SimServer, fallback: SimServer, tmp_path: Path
) -> None:
    with (
        serving_process(config_path) as (proc, url, lines),
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {GATEWAY_KEY}"}, timeout=20
        ) as client,
    ):
        assert answer(client).headers["x-rolecall-provider"] == "a"
        config_path.write_text(config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path))
        proc.send_signal(signal.SIGHUP)  # before: the signal's default, the process ended
        wait_for(lambda: generation(client) == 2)
        assert answer(client).headers["x-rolecall-provider"] == "b"
        assert proc.poll() is None
    assert any("reading config" in line for line in lines)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_while_starting_neither_stops_rolecall_serve_nor_loses_the_edit(
    config_path: Path, primary: SimServer, fallback: SimServer, tmp_path: Path, workers: str
) -> None:
    # The credential check at startup can take up to a provider's timeout; a SIGHUP sent
    # meanwhile (an edit pushed by a deployment tool) used to end the process, silently.
    primary.script_models(Fault("timeout", delay=1.5))

    def edit_and_hang_up(proc: subprocess.Popen[str]) -> None:
        wait_for(lambda: primary.model_calls >= 1)  # the check is under way
        config_path.write_text(config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path))
        proc.send_signal(signal.SIGHUP)

    with (
        serving_process(config_path, "--workers", workers, starting=edit_and_hang_up) as (
            proc,
            url,
            _,
        ),
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {GATEWAY_KEY}"}, timeout=20
        ) as client,
    ):
        wait_for(lambda: answer(client).headers["x-rolecall-provider"] == "b")
        assert proc.poll() is None


def test_an_edit_made_while_the_gateway_was_starting_is_served(
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
) -> None:
    # The config was read before the credential check; an edit saved during the check
    # (seconds, for a slow provider) was taken as the file already served, and never read.
    gateway = RunningGateway(config_path)  # the config is read here
    config_path.write_text(config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path))
    gateway.start()
    try:
        with gateway.client() as client:
            wait_for(lambda: generation(client) == 2, timeout=5)
            assert answer(client).headers["x-rolecall-provider"] == "b"
    finally:
        gateway.stop()


async def test_poll_soon_reads_the_file_at_once_not_at_the_next_interval(
    config_path: Path, primary: SimServer, fallback: SimServer, tmp_path: Path
) -> None:
    seen: list[str] = []

    async def on_change(config: RolecallConfig) -> None:
        seen.append(config.roles["coder"].provider)

    watcher = ConfigWatcher(config_path, on_change, interval=3600)
    watcher.start()
    try:
        edit = config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path)
        await asyncio.to_thread(config_path.write_text, edit)
        watcher.poll_soon()
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == ["b"]
    finally:
        await watcher.stop()


async def test_edits_read_while_a_reload_is_under_way_end_on_the_newest_file(
    config_path: Path, primary: SimServer, fallback: SimServer, tmp_path: Path
) -> None:
    # A reload checks credentials before it applies; a second SIGHUP (or the regular poll)
    # during that check must not apply its newer file first, then be overtaken by the older.
    applied: list[str] = []
    first_check = asyncio.Event()

    async def on_change(config: RolecallConfig) -> None:
        provider = config.roles["coder"].provider
        if provider == "b":  # the first edit: its provider is slow to answer the check
            await first_check.wait()
        applied.append(provider)

    watcher = ConfigWatcher(config_path, on_change, interval=3600)
    try:
        edit = config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path)
        await asyncio.to_thread(config_path.write_text, edit)
        watcher.poll_soon()
        await asyncio.sleep(0.2)  # the first reload is checking its credentials
        newest = config_text(primary, fallback, coder="{provider: a}", tmp=tmp_path)
        await asyncio.to_thread(config_path.write_text, newest)
        watcher.poll_soon()
        await asyncio.sleep(0.2)
        first_check.set()
        for _ in range(200):
            if len(applied) == 2:
                break
            await asyncio.sleep(0.01)
        assert applied == ["b", "a"]  # the file as it is now is what serves, not the older edit
    finally:
        first_check.set()
        await watcher.stop()


def _replace_with(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


def _put_back(path: Path, text: str) -> None:
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink()
    path.write_text(text)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
async def test_a_config_replaced_by_no_regular_file_keeps_serving_and_says_what_it_is(
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A FIFO once blocked the watcher's read for ever (no reload after it, ever); a
    # directory was reported as a file that "disappeared".
    seen: list[str] = []

    async def on_change(config: RolecallConfig) -> None:
        seen.append(config.roles["coder"].provider)

    watcher = ConfigWatcher(config_path, on_change, interval=3600)
    await watcher.poll()  # the file as served
    await asyncio.to_thread(_replace_with, config_path, kind)
    try:
        with caplog.at_level(logging.WARNING, logger="rolecall.gateway"):
            assert await asyncio.wait_for(watcher.poll(), 5) is False
        what = "a FIFO (named pipe)" if kind == "fifo" else "a directory"
        assert f"is {what}, not a config file" in caplog.text
        assert "disappeared" not in caplog.text
        # Put back as a file, the next edit is served.
        edit = config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path)
        await asyncio.to_thread(_put_back, config_path, edit)
        assert await asyncio.wait_for(watcher.poll(), 5) is True
        assert seen[-1] == "b"
    finally:
        await watcher.stop()


async def test_a_reload_under_way_when_the_gateway_closes_is_ended_with_it(
    config_path: Path, primary: SimServer, fallback: SimServer, tmp_path: Path
) -> None:
    """A SIGHUP's reload still checking the new config's keys when the gateway stops ends
    with it (it ran on, its check's connection open, and would have swapped a router in
    that nothing closed)."""
    from rolecall.config.load import load_config
    from rolecall.gateway.app import Gateway

    gateway = Gateway(load_config(config_path), config_path=config_path, poll_interval=3600)
    await gateway.start()
    primary.script_models("timeout")  # the reload's credential check of `a` gets no answer
    edit = config_text(primary, fallback, coder="{provider: a}", tmp=tmp_path)
    await asyncio.to_thread(config_path.write_text, edit)
    gateway.reload_now()
    while primary.model_calls < 2:  # noqa: ASYNC110 (counted in the sim's thread)
        await asyncio.sleep(0.01)
    await gateway.aclose()
    current = asyncio.current_task()
    assert not [t for t in asyncio.all_tasks() if t is not current and not t.done()]


async def test_a_config_unreadable_for_want_of_descriptors_is_said_so_once_then_read(
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A process out of file descriptors (EMFILE) said the config had "disappeared".
    seen: list[str] = []

    async def on_change(config: RolecallConfig) -> None:
        seen.append(config.roles["coder"].provider)

    watcher = ConfigWatcher(config_path, on_change, interval=3600)
    await watcher.poll()  # the file as served
    edit = config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path)
    await asyncio.to_thread(config_path.write_text, edit)
    try:
        with caplog.at_level(logging.WARNING, logger="rolecall.gateway"):
            with no_descriptor_left():
                assert await watcher.poll() is False
                assert await watcher.poll() is False
            lines = [r.getMessage() for r in caplog.records if r.name == "rolecall.gateway"]
        assert len(lines) == 1, lines  # once, not at every poll
        assert "too many open files" in lines[0] and "ulimit -n" in lines[0]
        assert "disappeared" not in caplog.text
        # Descriptors free again: the edit made meanwhile is served.
        assert await watcher.poll() is True
        assert seen[-1] == "b"
    finally:
        await watcher.stop()
