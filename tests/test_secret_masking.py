"""A key echoed in another form is masked too: letter case, percent-encoding, base64, answers.

Only the exact key was masked: a provider echoing it upper-cased, percent-encoded
or base64-encoded (or a model repeating it in its answer) got it to gateway
clients, the gateway log, run logs and the store.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from rolecall import _secrets
from rolecall._secrets import Secret, forget_secret, redact, register_secret
from rolecall.sim import SimServer
from serve_helpers import EXE, serving, stored_bytes

# '/', '+' and '=' make the percent-encoded and the URL-safe base64 forms differ.
KEY = "sk-echo/Key+Test=000111222333444555"
GATEWAY_KEY = "gw-masking-test-gateway-key-0009"


def b64(text: str, prefix: str = "", alphabet: Callable[[bytes], bytes] = base64.b64encode) -> str:
    return alphabet((prefix + text + " end").encode()).decode()


def encoded_key_windows(prefix: str, alphabet: Callable[[bytes], bytes]) -> list[str]:
    """10-character pieces of the base64 characters that encode KEY alone."""
    encoded = b64(KEY, prefix, alphabet)
    start, end = -(-8 * len(prefix) // 6), 8 * (len(prefix) + len(KEY)) // 6
    region = encoded[start:end]
    return [region[i : i + 10] for i in range(len(region) - 9)]


FORMS = {
    "exact": KEY,
    "upper": KEY.upper(),
    "lower": KEY.lower(),
    "percent": quote(KEY, safe=""),
    "percent-lower-hex": quote(KEY, safe="").replace("%2F", "%2f"),
    "in-answer": f"Sure! Your key is {KEY}, keep it safe.",
}
ALIGNMENTS = [
    pytest.param(prefix, alphabet, id=f"{name}-{len(prefix)}")
    for prefix in ("", "a", "ab", "key: ")
    for name, alphabet in (("std", base64.b64encode), ("urlsafe", base64.urlsafe_b64encode))
]


@pytest.fixture(autouse=True)
def registered() -> None:
    Secret(KEY)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_text_forms_are_masked(form: str) -> None:
    shown = redact(f"error: {form} (echoed)")
    assert "***" in shown
    for variant in (KEY, KEY.upper(), KEY.lower(), quote(KEY, safe="")):
        assert variant.lower() not in shown.lower()


@pytest.mark.parametrize(("prefix", "alphabet"), ALIGNMENTS)
def test_base64_forms_are_masked_at_every_alignment(
    prefix: str, alphabet: Callable[[bytes], bytes]
) -> None:
    shown = redact(f"header: {b64(KEY, prefix, alphabet)}")
    assert "***" in shown
    for window in encoded_key_windows(prefix, alphabet):
        assert window not in shown


def test_answer_masking_leaves_other_text_alone() -> None:
    from rolecall._secrets import redact_answer

    text = "Connect with postgres://app:pw@db/x; key=value; the quick brown fox."
    assert redact_answer(text) == text
    assert redact_answer(" word") == " word"
    assert redact_answer(f"a {KEY} b") == "a *** b"


# The whole path: a fake provider whose answers carry the key in each form.
LEAKED = [KEY, KEY.upper(), quote(KEY, safe=""), b64(KEY), b64(KEY, "a", base64.urlsafe_b64encode)]


def assert_masked(text: str) -> None:
    for form in LEAKED:
        assert form not in text
    for prefix, alphabet in (("", base64.b64encode), ("a", base64.urlsafe_b64encode)):
        for window in encoded_key_windows(prefix, alphabet):
            assert window not in text


@pytest.fixture
def echoing() -> Iterator[SimServer]:
    reply = " ".join(f"form {form} here." for form in LEAKED)
    with SimServer("openai", api_key=KEY, models=("m",), reply=reply) as sim:
        yield sim


@pytest.fixture
def config(tmp_path: Path, echoing: SimServer) -> Path:
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            providers:
              a: {{type: openai-compatible, model: m, base_url: "{echoing.base_url}",
                  api_key: "{KEY}"}}
            default_provider: a
            retry: {{max_attempts: 1, initial_backoff: 10ms}}
            metrics:
              url: sqlite:///{tmp_path}/rolecall.db
              runs_dir: {tmp_path}/runs
              flush_interval: 50ms
            gateway: {{keys: [{GATEWAY_KEY}]}}
            """
        )
    )
    return path


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args, "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=config.parent,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_ask_prints_answers_with_the_key_masked(config: Path) -> None:
    for options in ((), ("--stream",), ("--json",)):
        result = run_cli(config, "ask", "coder", "hi", *options)
        assert result.returncode == 0, result.stderr
        assert "form *** here." in result.stdout
        assert_masked(result.stdout + result.stderr)


def test_gateway_answers_errors_log_and_store_mask_every_form(
    config: Path, echoing: SimServer
) -> None:
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    chat = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
    with serving(config, "--log-level=debug") as (url, lines):
        endpoint = url + "/v1/chat/completions"
        plain = httpx.post(endpoint, json=chat, headers=headers, timeout=30)
        assert plain.status_code == 200
        assert "form *** here." in plain.json()["choices"][0]["message"]["content"]
        streamed = httpx.post(endpoint, json={**chat, "stream": True}, headers=headers, timeout=30)
        assert streamed.status_code == 200
        pieces = [
            json.loads(line[6:])["choices"][0]["delta"].get("content", "")
            for line in streamed.text.splitlines()
            if line.startswith("data: {") and '"choices":[{' in line
        ]
        assert "form *** here." in "".join(pieces)
        # A provider error quoting its answer: structured output that is not JSON.
        echoing.responder = lambda body: f"{b64(KEY)} is not JSON"
        wanted = {**chat, "response_format": {"type": "json_object"}}
        failed = httpx.post(endpoint, json=wanted, headers=headers, timeout=30)
        assert failed.status_code == 502
        assert "not the requested JSON" in failed.text
    for text in (plain.text, streamed.text, failed.text, "".join(lines)):
        assert_masked(text)
    for raw in stored_bytes(config.parent).values():
        assert_masked(raw.decode("utf-8", "replace"))


async def test_the_python_api_masks_an_echoed_key_in_answers_and_chunks(config: Path) -> None:
    from rolecall.routing.router import Router

    async with Router.from_file(config, check_credentials=False) as router:
        reply = await router.complete("coder", "hi")
        stream = router.stream("coder", "hi")
        chunks = [chunk async for chunk in stream]
    assert_masked(reply.text)
    assert "***" in reply.text
    for chunk in chunks:
        assert_masked(chunk)


def test_a_forgotten_secret_is_shown_again_and_the_others_stay_masked() -> None:
    with _secrets._scoped_registry():
        register_secret("ya29.old-access-token")
        register_secret("sk-kept-key-0123456789")
        forget_secret("ya29.old-access-token")
        text = redact("old ya29.old-access-token kept sk-kept-key-0123456789")
    assert text == "old ya29.old-access-token kept ***"
