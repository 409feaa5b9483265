"""Cost of masking secrets in answer text, per reply and per stream chunk.

    .venv/bin/python benchmarks/bench_redact.py [--secrets 3] [--size 2048] [--number 20000]

Every answer and stream chunk the gateway and the CLI send passes through
``redact_answer`` (error texts and log lines through ``redact``). This times
both on a clean text of ``--size`` characters with ``--secrets`` registered
keys, on a word-sized stream chunk, and (the rare case) on a text that holds a
key. Figures are the best of 5 repeats, in microseconds per call.
"""

from __future__ import annotations

import argparse
import random
import string
import timeit
from collections.abc import Callable

from rolecall._secrets import Secret, redact, redact_answer

SAMPLE = (
    "the quick brown fox jumps over the lazy dog and then writes some code: "
    "def handler(request): return Response(status=200, body=payload) # see docs"
)


def _key(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=48))


def _time(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secrets", type=int, default=3)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    rng = random.Random(7)
    words = SAMPLE.split()
    keys = [_key(rng, f"sk-{i}-") for i in range(args.secrets)]
    for key in keys:
        Secret(key)
    text = " ".join(rng.choice(words) for _ in range(args.size))[: args.size]
    leaky = text[: args.size // 2] + keys[0] + text[args.size // 2 :]
    rows = [
        (
            f"redact_answer, {args.size} chars, clean",
            _time(lambda: redact_answer(text), args.number),
        ),
        (
            "redact_answer, one stream chunk ' brown'",
            _time(lambda: redact_answer(" brown"), args.number),
        ),
        (f"redact, {args.size} chars, clean", _time(lambda: redact(text), args.number)),
        (f"redact_answer, {args.size} chars, one key", _time(lambda: redact_answer(leaky), 200)),
    ]
    print(f"{args.secrets} registered secrets")
    for label, micros in rows:
        print(f"{label:<45} {micros:9.2f} us")


if __name__ == "__main__":
    main()
