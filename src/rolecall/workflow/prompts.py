"""What each stage asks its role, and the shapes of the structured answers.

Each system prompt opens with "You are the <role>" so that logs, and the fake
servers used in tests, can tell the stages apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rolecall.workflow.plan import PLAN_SCHEMA, Plan, PlannedFile
from rolecall.workflow.structured import InvalidAnswer

__all__ = [
    "BLOCKING",
    "CONTINUE",
    "FINDINGS_SCHEMA",
    "MAX_QUESTIONS",
    "QUESTIONS_SCHEMA",
    "Finding",
    "Question",
    "check_fix_messages",
    "clarified_spec",
    "clarify_messages",
    "fix_messages",
    "generate_messages",
    "parse_findings",
    "parse_questions",
    "plan_messages",
    "review_messages",
]

MAX_QUESTIONS = 10
Severity = Literal["blocker", "major", "minor", "info"]
SEVERITIES: tuple[Severity, ...] = ("blocker", "major", "minor", "info")
BLOCKING: frozenset[str] = frozenset({"blocker", "major"})
Chat = list[dict[str, str]]

# Sent after an answer cut off at the output token limit, with that answer as the
# assistant's turn: the next answer is appended to it as is.
CONTINUE = (
    "Your answer was cut off. Continue exactly where it stopped: no repetition, "
    "no preamble, no code fence."
)

QUESTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "questions": {
            "type": "array",
            "maxItems": MAX_QUESTIONS,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "question": {"type": "string"},
                    "default": {"type": "string"},
                },
                "required": ["id", "question", "default"],
            },
        }
    },
    "required": ["questions"],
}

FINDINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "severity": {"type": "string", "enum": list(SEVERITIES)},
                    "line": {"type": "integer"},
                    "message": {"type": "string"},
                },
                "required": ["severity", "message"],
            },
        }
    },
    "required": ["findings"],
}


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    default: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "question": self.question, "default": self.default}


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    message: str
    line: int | None = None

    @property
    def blocking(self) -> bool:
        return self.severity in BLOCKING

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "line": self.line, "message": self.message}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        severity = data.get("severity")
        return cls(
            severity=severity if severity in SEVERITIES else "info",
            message=str(data.get("message", "")),
            line=data.get("line") if isinstance(data.get("line"), int) else None,
        )


def parse_questions(data: Any) -> list[Question]:
    """The clarifier's questions; malformed entries are dropped (clarifying is optional).

    :class:`InvalidAnswer` only when the answer is not ``{"questions": [...]}`` at all.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("questions"), list):
        raise InvalidAnswer(["expected an object with a 'questions' array"])
    questions: list[Question] = []
    for item in data["questions"]:
        if not isinstance(item, Mapping):
            continue
        qid, text, default = item.get("id"), item.get("question"), item.get("default", "")
        if not isinstance(qid, str | int) or isinstance(qid, bool) or not str(qid).strip():
            continue
        if not isinstance(text, str) or not text.strip():
            continue
        if any(q.id == str(qid).strip() for q in questions):
            continue
        shown = "" if default is None else str(default)
        questions.append(Question(str(qid).strip(), text.strip(), shown))
        if len(questions) == MAX_QUESTIONS:
            break
    return questions


def parse_findings(data: Any) -> list[Finding]:
    """The reviewer's findings, or :class:`InvalidAnswer`."""
    if not isinstance(data, Mapping) or not isinstance(data.get("findings"), list):
        raise InvalidAnswer(["expected an object with a 'findings' array"])
    problems: list[str] = []
    findings: list[Finding] = []
    for index, item in enumerate(data["findings"]):
        if not isinstance(item, Mapping):
            problems.append(f"findings[{index}] must be an object")
            continue
        severity, message, line = item.get("severity"), item.get("message"), item.get("line")
        if severity not in SEVERITIES:
            problems.append(f"findings[{index}].severity must be one of {', '.join(SEVERITIES)}")
        elif not isinstance(message, str) or not message.strip():
            problems.append(f"findings[{index}].message must be a non-empty string")
        elif line is not None and (not isinstance(line, int) or isinstance(line, bool)):
            problems.append(f"findings[{index}].line must be an integer")
        else:
            findings.append(Finding(severity, message.strip(), line))
    if problems:
        raise InvalidAnswer(problems)
    return findings


def clarified_spec(
    spec_text: str, questions: Sequence[Question], answers: Mapping[str, str]
) -> str:
    """The spec followed by the questions asked and the answers used."""
    if not questions:
        return spec_text
    lines = [spec_text.rstrip(), "", "## Clarifications", ""]
    for question in questions:
        lines.append(f"- Q ({question.id}): {question.question}")
        lines.append(f"  A: {answers.get(question.id, question.default)}")
    return "\n".join(lines) + "\n"


_COMMON = (
    "Build what the spec asks for, in the language and with the tools it names "
    "(choose conventional ones if it names none)."
)


def clarify_messages(spec_text: str) -> Chat:
    return [
        {
            "role": "system",
            "content": (
                "You are the clarifier in a spec-to-code workflow. Read the spec and list the "
                f"few questions (at most {MAX_QUESTIONS}, often none) whose answers would change "
                "the code, each with a short id and a sensible default answer. Answer with JSON "
                'only: {"questions": [{"id": "...", "question": "...", "default": "..."}]}.'
            ),
        },
        {"role": "user", "content": f"Spec:\n\n{spec_text}"},
    ]


def plan_messages(spec_text: str) -> Chat:
    return [
        {
            "role": "system",
            "content": (
                "You are the planner in a spec-to-code workflow. "
                f"{_COMMON} List every file to write, with relative paths using '/', what each "
                "file is for, and which other planned files it depends on (those are written "
                "first and shown to the coder). Keep it small: only the files the spec needs. "
                "Answer with JSON only, matching this JSON Schema:\n" + json.dumps(PLAN_SCHEMA)
            ),
        },
        {"role": "user", "content": f"Spec:\n\n{spec_text}"},
    ]


def _plan_outline(plan: Plan) -> str:
    return "\n".join(f"- {f.path}: {f.purpose}" for f in plan.files)


def generate_messages(
    spec_text: str,
    plan: Plan,
    file: PlannedFile,
    dependencies: Sequence[tuple[str, str | None]],
) -> Chat:
    parts = [
        f"Spec:\n\n{spec_text}",
        f"All planned files:\n{_plan_outline(plan)}",
    ]
    for path, content in dependencies:
        if content is None:
            parts.append(f"Dependency `{path}`: not available.")
        else:
            parts.append(f"Dependency `{path}` (already written):\n```\n{content}\n```")
    parts.append(f"File to write: `{file.path}`\nPurpose: {file.purpose}")
    return [
        {
            "role": "system",
            "content": (
                f"You are the coder in a spec-to-code workflow. {_COMMON} Write the complete "
                "content of the one file you are asked for, consistent with its dependencies. "
                "Answer with the file content only: no explanation, no surrounding code fence."
            ),
        },
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def _numbered(content: str) -> str:
    return "\n".join(f"{n:4d} | {line}" for n, line in enumerate(content.splitlines(), 1))


def review_messages(
    spec_text: str, file: PlannedFile, content: str, checks: str | None = None
) -> Chat:
    checked = f"\n\nAutomatic checks run on the output:\n{checks}" if checks else ""
    return [
        {
            "role": "system",
            "content": (
                "You are the reviewer in a spec-to-code workflow. Review one file against the "
                "spec: bugs, missing requirements, security problems, things that will not run. "
                "Severity: blocker (cannot work), major (wrong or missing behaviour), minor "
                "(quality), info (remark). Give line numbers where they help. Answer with JSON "
                'only: {"findings": [{"severity": "...", "line": 1, "message": "..."}]}; '
                "an empty list when the file is fine."
            ),
        },
        {
            "role": "user",
            "content": (
                f"Spec:\n\n{spec_text}\n\nFile to review: `{file.path}`\nPurpose: {file.purpose}"
                f"\n\n{_numbered(content)}{checked}"
            ),
        },
    ]


def fix_messages(
    spec_text: str, file: PlannedFile, content: str, findings: Sequence[Finding]
) -> Chat:
    listed = "\n".join(
        f"- {f.severity}{f' (line {f.line})' if f.line else ''}: {f.message}" for f in findings
    )
    return [
        {
            "role": "system",
            "content": (
                f"You are the coder in a spec-to-code workflow. {_COMMON} A reviewer found "
                "problems in a file you wrote. Fix them and answer with the complete corrected "
                "file content only: no explanation, no surrounding code fence."
            ),
        },
        {
            "role": "user",
            "content": (
                f"Spec:\n\n{spec_text}\n\nFile to fix: `{file.path}`\nPurpose: {file.purpose}\n\n"
                f"Current content:\n```\n{content}\n```\n\nReview findings:\n{listed}"
            ),
        },
    ]


def check_fix_messages(
    spec_text: str, file: PlannedFile, content: str, failures: Sequence[tuple[str, str, str]]
) -> Chat:
    """Fix one file after checks failed; ``failures`` are (command, result, output tail)."""
    listed = "\n\n".join(
        f"`{command}`: {result}\n```\n{output}\n```" for command, result, output in failures
    )
    return [
        {
            "role": "system",
            "content": (
                f"You are the coder in a spec-to-code workflow. {_COMMON} Checks run on the "
                "code failed, and their output names a file you wrote. Fix it and answer with "
                "the complete corrected file content only: no explanation, no surrounding code "
                "fence."
            ),
        },
        {
            "role": "user",
            "content": (
                f"Spec:\n\n{spec_text}\n\nFile to fix: `{file.path}`\nPurpose: {file.purpose}\n\n"
                f"Current content:\n```\n{content}\n```\n\nFailed checks:\n{listed}"
            ),
        },
    ]
