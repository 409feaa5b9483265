"""Untidy but usable structured answers: JSON wrapped in prose, with trailing commas or
comments, is recovered without a repair call; two different JSON values are ambiguous."""

from __future__ import annotations

import json

import pytest

from rolecall.workflow.structured import InvalidAnswer, extract_json

PLAN = {"files": [{"path": "a.py", "purpose": "the module", "depends_on": []}]}
PLAN_TEXT = json.dumps(PLAN, indent=1)


@pytest.mark.parametrize(
    "answer",
    [
        # Braces in the prose around a fenced answer.
        f"Here is the plan:\n```json\n{PLAN_TEXT}\n```\nLet me know if you want {{changes}}.",
        f"I kept it small (one file, no {{extras}}).\n\n```json\n{PLAN_TEXT}\n```",
        f"<think>a plan needs {{files}}</think>\n{PLAN_TEXT}",
        f"Sure! {PLAN_TEXT} Anything else {{?}}",
        # The same value twice is not ambiguous.
        f"Plan:\n```json\n{PLAN_TEXT}\n```\nAgain, in full:\n```json\n{PLAN_TEXT}\n```",
        # Trailing commas and comments, bare, fenced or in prose.
        '{"files": [{"path": "a.py", "purpose": "the module", "depends_on": [],},],}',
        '{\n  // the one file\n  "files": [\n    {"path": "a.py", /* main */'
        ' "purpose": "the module", "depends_on": []}\n  ]\n}',
        'Sure: {"files": [{"path": "a.py", "purpose": "the module", "depends_on": [],}]} OK?',
        'Here:\n```json\n{"files": [{"path": "a.py", "purpose": "the module",'
        ' "depends_on": [], // none\n}]}\n```\nDone.',
    ],
)
def test_the_one_json_value_is_recovered_from_an_untidy_answer(answer: str) -> None:
    assert extract_json(answer) == PLAN


def test_commas_and_slashes_inside_strings_are_kept() -> None:
    answer = '{"purpose": "see http://x.org/a,b /* not a comment */", "n": [1,],}'
    assert extract_json(answer) == {"purpose": "see http://x.org/a,b /* not a comment */", "n": [1]}


@pytest.mark.parametrize(
    "answer",
    [
        'First:\n```json\n{"a": 1}\n```\nor rather:\n```json\n{"b": 2}\n```',
        '{"a": 1}\n\nFor example {"b": 2} would also do.',
    ],
)
def test_two_different_json_values_are_ambiguous(answer: str) -> None:
    with pytest.raises(InvalidAnswer, match="different JSON values"):
        extract_json(answer)


def test_json_nested_past_the_parser_is_an_invalid_answer_not_a_crash() -> None:
    with pytest.raises(InvalidAnswer, match="nested too deeply"):
        extract_json("[" * 100_000 + "]" * 100_000)
