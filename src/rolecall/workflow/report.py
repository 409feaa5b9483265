"""What a finished run reports: REVIEW.md, the checks' outcome, files left cut off.

Read from the task records alone, so a resumed run reports the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rolecall.workflow import prompts
from rolecall.workflow.prompts import Finding
from rolecall.workflow.verify import CommandResult

__all__ = [
    "checks_summary",
    "final_reviews",
    "review_report",
    "truncated_files",
    "unresolved_files",
    "verify_history",
]

# How much of a failing command's output REVIEW.md shows (its tail).
REPORT_OUTPUT_CHARS = 4000


def _by_finish(records: Mapping[str, Any]) -> list[Any]:
    return sorted(
        (r for r in records.values() if r.status == "ok" and isinstance(r.result, dict)),
        key=lambda r: r.finished_at or 0.0,
    )


def truncated_files(records: Mapping[str, Any]) -> list[str]:
    """Files whose last generate or fix answer was cut off, sorted."""
    latest: dict[str, str] = {}
    for record in _by_finish(records):
        if record.name.startswith(("generate:", "fix:")) and "path" in record.result:
            latest[record.result["path"]] = str(record.result.get("status"))
    return sorted(path for path, status in latest.items() if status == "truncated")


def final_reviews(records: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The last finished review of each file (what remains after the fix rounds)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records.values():
        result = record.result
        if record.stage != "review" or record.status != "ok" or not isinstance(result, dict):
            continue
        if "findings" not in result or result.get("skipped"):
            continue
        path = result["path"]
        if path not in latest or result["round"] > latest[path]["round"]:
            latest[path] = result
    return latest


def unresolved_files(records: Mapping[str, Any]) -> list[str]:
    """Files whose last review still has blocker or major findings (the fix rounds ran
    out, or there were none), sorted."""
    return sorted(path for path, review in final_reviews(records).items() if review.get("blocking"))


def verify_history(records: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every finished verify result, in order (``verify@1``, ``verify@2``, ...)."""
    found = [
        r.result
        for r in records.values()
        if r.stage == "verify" and r.name.startswith("verify@") and r.status == "ok"
    ]
    return sorted(found, key=lambda result: int(result["round"]))


def checks_summary(records: Mapping[str, Any]) -> dict[str, Any]:
    """``{status: passed | failed | not run, rounds, fix_rounds, commands, network}``."""
    history = verify_history(records)
    if not history:
        return {"status": "not run", "rounds": 0, "fix_rounds": 0, "commands": []}
    last = history[-1]
    fix_rounds = len(
        {
            r.name.rpartition("@")[2]
            for r in records.values()
            if r.name.startswith("fix:") and r.name.rpartition("@")[2].startswith("v")
        }
    )
    status = {"not_run": "not run"}.get(last["status"], last["status"])
    return {
        "status": status,
        "verify": f"verify@{last['round']}",
        "rounds": len(history),
        "fix_rounds": fix_rounds,
        "source": last.get("source"),
        "network": last.get("network"),
        "reason": last.get("reason"),
        "commands": [
            {k: c[k] for k in ("command", "status", "exit_code")} for c in last.get("commands", ())
        ],
    }


def _tail(text: str) -> str:
    return text if len(text) <= REPORT_OUTPUT_CHARS else "...\n" + text[-REPORT_OUTPUT_CHARS:]


# Where the commands came from (checks.Source), as REVIEW.md says it.
_SOURCES = {
    "spec": "from the spec",
    "config": "from workflow.verify in the config",
    "detected": "detected from the plan",
}


def _checks_lines(history: Sequence[Mapping[str, Any]]) -> list[str]:
    if not history:
        return ["## Checks", "", "Not run: the run stopped before the checks.", ""]
    last = history[-1]
    status = {"not_run": "not run"}.get(last["status"], last["status"])
    lines = ["## Checks", "", f"Final: **{status}** (verify@{last['round']})."]
    if last["status"] == "not_run":
        return [*lines, f"Not run: {last.get('reason', 'no checks')}.", ""]
    source = _SOURCES.get(str(last.get("source")), f"from the {last.get('source')}")
    lines += [f"Commands {source}; {last.get('network', '')}.", ""]
    for result in history:
        parts = [
            f"`{c.command}` {c.summary()}"
            for c in map(CommandResult.from_dict, result.get("commands", ()))
        ]
        lines.append(f"- verify@{result['round']}: {result['status']}: " + "; ".join(parts))
    lines.append("")
    for command in map(CommandResult.from_dict, last.get("commands", ())):
        if not command.passed:
            lines += [
                f"Output of `{command.command}`:",
                "",
                "```",
                _tail(command.output),
                "```",
                "",
            ]
    return lines


def _reviewer_lines(reviews: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = [(p, r) for p, r in sorted(reviews.items()) if r.get("reviewer")]
    if not rows:
        return []
    lines = ["## Reviewers", ""]
    for path, review in rows:
        line = (
            f"- {path}: written by {review.get('writer') or '-'}, reviewed by {review['reviewer']}"
        )
        if review.get("vendor_note"):
            line += f" ({review['vendor_note']})"
        lines.append(line)
    return [*lines, ""]


def review_report(
    run_id: str,
    reviews: Mapping[str, Mapping[str, Any]],
    rounds: int,
    truncated: Sequence[str] = (),
    checks: Sequence[Mapping[str, Any]] = (),
) -> str:
    """REVIEW.md: the checks, files left cut off, then the findings that remain per file."""
    order = {s: i for i, s in enumerate(prompts.SEVERITIES)}
    lines = [
        "# Review",
        "",
        f"Findings that remain after up to {rounds} fix round(s) (run {run_id}).",
        "",
        *_checks_lines(checks),
    ]
    if truncated:
        lines += [
            "## Truncated",
            "",
            "The answer for these files stopped at the provider's output token limit: each "
            "is written as far as it went and was not reviewed; raise `max_tokens` for the "
            "coder role and run again.",
            "",
            *(f"- {p}" for p in truncated),
            "",
        ]
    clean = [p for p, r in sorted(reviews.items()) if not r["findings"]]
    for path, review in sorted(reviews.items()):
        findings = sorted(
            (Finding.from_dict(f) for f in review["findings"]), key=lambda f: order[f.severity]
        )
        if not findings:
            continue
        lines += [f"## {path}", ""]
        for f in findings:
            where = f" (line {f.line})" if f.line else ""
            lines.append(f"- **{f.severity}**{where}: {f.message}")
        lines.append("")
    if clean:
        lines += ["## No findings", "", *(f"- {p}" for p in clean), ""]
    if not reviews:
        lines += ["No file was reviewed.", ""]
    return "\n".join([*lines, *_reviewer_lines(reviews)])
