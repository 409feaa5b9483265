"""Turning a coder's answer into a file: whole (continued past the token limit) and safe.

Shared by the generate stage and every kind of fix round.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rolecall.workflow import prompts
from rolecall.workflow.engine import TaskContext
from rolecall.workflow.files import OutputDir, UnsafePath
from rolecall.workflow.structured import strip_fence

__all__ = ["MAX_CONTINUATIONS", "cut_off", "whole_answer", "write_answer"]

# A file answer cut off at the provider's output token limit is continued on the same
# provider this many times before the file is reported truncated.
MAX_CONTINUATIONS = 2


async def whole_answer(ctx: TaskContext, messages: prompts.Chat) -> tuple[str, bool]:
    """The answer's text, continued on the same provider while it stops at the output
    token limit (at most :data:`MAX_CONTINUATIONS` times); True when still cut off."""
    reply = await ctx.ask(messages)
    text = reply.text
    for _ in range(MAX_CONTINUATIONS):
        if reply.finish_reason != "length":
            return text, False
        messages = [
            *messages,
            {"role": "assistant", "content": text},
            {"role": "user", "content": prompts.CONTINUE},
        ]
        reply = await ctx.ask(messages, provider=reply.provider)
        text += reply.text
    return text, reply.finish_reason == "length"


def cut_off() -> dict[str, str]:
    return {
        "reason": f"the answer hit the output token limit {MAX_CONTINUATIONS + 1} times: "
        "raise max_tokens for the coder role"
    }


def write_answer(
    ctx: TaskContext, output: OutputDir, path: str, answer: str, status: str = "written"
) -> dict[str, Any]:
    """Write the answer (fence stripped) to ``path``; the result names the writer."""
    content = strip_fence(answer)
    if content and not content.endswith("\n"):
        content += "\n"
    try:
        output.write(path, content)
    except UnsafePath as exc:
        ctx.note("refused")
        return {"path": path, "status": "refused", "reason": exc.reason}
    # An empty file may be right (__init__.py), but the summary must not hide it.
    ctx.note(status if content.strip() else f"{status} (empty)")
    digest = hashlib.sha256(content.encode()).hexdigest()
    return {
        "path": path,
        "status": status,
        "sha256": digest,
        "bytes": len(content),
        "provider": ctx.record.provider,
    }
