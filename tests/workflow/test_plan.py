"""The plan's shape and cross-entry checks, and pulling JSON out of model answers."""

from __future__ import annotations

from typing import Any

import pytest

from rolecall.workflow.plan import PlannedFile, parse_plan
from rolecall.workflow.structured import InvalidAnswer, extract_json, strip_fence


def files(*entries: tuple[str, list[str]]) -> dict[str, Any]:
    return {"files": [{"path": p, "purpose": f"{p} purpose", "depends_on": d} for p, d in entries]}


def test_valid_plan_normalises_paths() -> None:
    plan = parse_plan(files(("./pkg/a.py", []), ("pkg\\b.py", ["pkg/a.py", "pkg/a.py"])))
    assert [f.path for f in plan.files] == ["pkg/a.py", "pkg/b.py"]
    assert plan.files[1].depends_on == ("pkg/a.py",)


def test_optional_fields_default() -> None:
    plan = parse_plan({"files": [{"path": "main.go"}]})
    assert plan.files[0].purpose == "" and plan.files[0].depends_on == ()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "JSON object"),
        ({"files": []}, "non-empty array"),
        ({"files": [{"purpose": "x"}]}, "files[0].path"),
        ({"files": [{"path": "a", "depends_on": "b"}]}, "files[0].depends_on"),
    ],
)
def test_invalid_plans_name_the_problem(data: Any, expected: str) -> None:
    with pytest.raises(InvalidAnswer) as info:
        parse_plan(data)
    assert any(expected in problem for problem in info.value.problems)


def test_repeated_paths_keep_the_first_entry_and_merge_dependencies() -> None:
    plan = parse_plan(
        {
            "files": [
                {"path": "b.py", "purpose": "first", "depends_on": []},
                {"path": "a.py", "purpose": "", "depends_on": []},
                {"path": "./b.py", "purpose": "second", "depends_on": ["a.py"]},
            ]
        }
    )
    assert [(f.path, f.purpose, f.depends_on) for f in plan.files] == [
        ("b.py", "first", ("a.py",)),
        ("a.py", "", ()),
    ]
    assert plan.fixes == ("'b.py' was listed more than once: kept the first entry",)


def test_paths_differing_only_in_case_are_one_file() -> None:
    # On macOS and Windows the second would overwrite the first while both were reported
    # written: the first entry is kept, and dependencies naming either reach it.
    plan = parse_plan(
        files(
            ("App.py", []),
            ("app.py", ["util.py"]),
            ("README.md", []),
            ("readme.MD", []),
            ("util.py", []),
            ("main.py", ["APP.PY", "caf\u00e9.py"]),
            ("cafe\u0301.py", []),
        )
    )
    nfd = "cafe\u0301.py"  # the same name as caf\u00e9.py on macOS
    assert [f.path for f in plan.files] == ["App.py", "README.md", "util.py", "main.py", nfd]
    assert plan.get("App.py") == PlannedFile("App.py", "App.py purpose", ("util.py",))
    assert plan.get("main.py") == PlannedFile("main.py", "main.py purpose", ("App.py", nfd))
    assert plan.fixes[:2] == (
        "'app.py' differs from 'App.py' only in case, so on macOS and Windows it is the "
        "same file: kept the first entry",
        "'readme.MD' differs from 'README.md' only in case, so on macOS and Windows it is "
        "the same file: kept the first entry",
    )
    assert len(plan.fixes) == 2


def test_self_and_unknown_dependencies_are_dropped() -> None:
    plan = parse_plan(files(("a.py", ["a.py", "missing.py"]), ("b.py", ["a.py"])))
    assert [f.depends_on for f in plan.files] == [(), ("a.py",)]
    assert plan.fixes == (
        "'a.py' depended on itself: dropped",
        "'a.py' depended on 'missing.py', which is not in the plan: dropped",
    )


def test_cycles_are_broken_at_the_edge_that_closes_them() -> None:
    plan = parse_plan(
        files(("a.py", ["b.py"]), ("b.py", ["c.py"]), ("c.py", ["a.py"]), ("d.py", ["d.py"]))
    )
    assert [f.depends_on for f in plan.files] == [("b.py",), ("c.py",), (), ()]
    assert "dependency cycle a.py -> b.py -> c.py -> a.py: dropped 'c.py' -> 'a.py'" in plan.fixes


def test_a_clean_plan_has_no_fixes() -> None:
    assert parse_plan(files(("a.py", []), ("b.py", ["a.py"]))).fixes == ()


def test_unsafe_paths_pass_the_plan_check_and_are_refused_later() -> None:
    plan = parse_plan(files(("../evil.py", []), ("/etc/x", [])))
    assert [f.path for f in plan.files] == ["../evil.py", "/etc/x"]


def test_extract_json_from_fences_and_prose() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Here is the plan:\n{"a": {"b": 2}}\nThanks.') == {"a": {"b": 2}}
    with pytest.raises(InvalidAnswer, match="not valid JSON"):
        extract_json("no json here")


def test_strip_fence_only_strips_one_surrounding_fence() -> None:
    assert strip_fence("```python\nprint(1)\n```") == "print(1)"
    assert strip_fence("```\nx = 1\n```\n") == "x = 1"
    inner = "# Title\n\n```sh\nls\n```\n\nmore"
    assert strip_fence(inner) == inner
    assert strip_fence("plain") == "plain"


@pytest.mark.parametrize(
    ("answer", "content"),
    [
        # What the embedded model wrote in the demo: its code, then the request to continue.
        (
            "```python\nimport os\nimport```\n\nYour answer was cut off. Continue exactly.",
            "import os\nimport",
        ),
        ("```python\nx = 1\n```\n\nThis program prints x.", "x = 1\n"),
        ("```python\nx = 1\ny = ", "x = 1\ny = "),  # cut off: the fence never closes
        # Only the opening fence: nothing was written, not a file holding "```".
        ("```", ""),
        ("```python", ""),
        ("  ```py  ", ""),
    ],
)
def test_an_answer_opening_with_a_fence_keeps_the_code_before_its_close(
    answer: str, content: str
) -> None:
    assert strip_fence(answer) == content


def test_questions_keep_the_usable_entries() -> None:
    from rolecall.workflow.prompts import parse_questions

    questions = parse_questions(
        {
            "questions": [
                {"id": "lang", "question": "Which language?", "default": "Go"},
                {"id": "", "question": "no id"},
                "not an object",
                {"id": "lang", "question": "duplicate id"},
                {"id": 7, "question": "Port?", "default": 8080},
            ]
        }
    )
    assert [(q.id, q.question, q.default) for q in questions] == [
        ("lang", "Which language?", "Go"),
        ("7", "Port?", "8080"),
    ]
    with pytest.raises(InvalidAnswer):
        parse_questions({"questions": "none"})


def test_plan_schema_asks_for_non_empty_paths_and_purposes() -> None:
    from rolecall.workflow.plan import PLAN_SCHEMA

    item = PLAN_SCHEMA["properties"]["files"]["items"]["properties"]
    assert item["path"]["minLength"] == 1 and item["purpose"]["minLength"] == 1
