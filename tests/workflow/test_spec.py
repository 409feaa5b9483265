"""Reading specs: Markdown, YAML/JSON mappings, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rolecall.workflow.errors import SpecError
from rolecall.workflow.spec import Spec, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "specs"


def test_markdown_spec_keeps_text_and_takes_title(tmp_path: Path) -> None:
    path = tmp_path / "tool.md"
    path.write_text("# Todo CLI\n\nA tiny todo list in Go.\n", encoding="utf-8")
    spec = load_spec(path)
    assert spec.name == "Todo CLI"
    assert "A tiny todo list in Go." in spec.text
    assert spec.format == "markdown"


def test_yaml_spec_in_gocreator_shape_is_rendered_with_every_key(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        """
name: inventory
description: Track stock levels.
scenarios:
  - name: add item
    given: an empty store
    then: the item is listed
requirements:
  functional: [add items, remove items]
  non_functional: [responds within 100 ms]
entities:
  - name: Item
    fields: [sku, quantity]
custom_key: keep me
""",
        encoding="utf-8",
    )
    spec = load_spec(path)
    assert spec.name == "inventory"
    assert spec.format == "yaml"
    text = spec.text
    assert text.startswith("# inventory")
    for expected in (
        "Track stock levels.",
        "## Scenarios",
        "add item",
        "the item is listed",
        "Functional:",
        "remove items",
        "responds within 100 ms",
        "## Entities",
        "sku",
        "keep me",
    ):
        assert expected in text


def test_json_spec(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"name": "calc", "description": "Adds numbers."}', encoding="utf-8")
    spec = load_spec(path)
    assert spec.name == "calc" and "Adds numbers." in spec.text


def test_a_spec_with_requirements_and_no_description_loads(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: cli\nrequirements:\n  - count the words of a file\n")
    assert "count the words of a file" in load_spec(path).text


def test_bundled_examples_load() -> None:
    md = load_spec(EXAMPLES / "wordcount.md")
    yml = load_spec(EXAMPLES / "wordcount.yaml")
    assert md.name == yml.name == "wordcount"
    assert "wordcount/counting.py" in md.text and "wordcount/counting.py" in yml.text


# A few hundred bytes of aliases, each naming the one before nine times: 9**9 strings.
LAUGHS = b"description: d\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + b"".join(
    b"l%d: &l%d [%s]\n" % (n, n, b", ".join([b"*l%d" % (n - 1)] * 9)) for n in range(1, 10)
)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.md", b"", "is empty"),
        ("blank.md", b"   \n\t\n", "is empty"),
        ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("latin1.md", "caf\u00e9 spec".encode("latin-1"), "not UTF-8"),
        ("broken.yaml", b"name: x\n  bad: [unclosed\n", "not valid YAML"),
        ("list.yaml", b"- a\n- b\n", "must be a mapping"),
        ("empty.yaml", b"# only a comment\n", "is empty"),
        ("broken.json", b'{"name": ', "not valid JSON"),
        ("unknown.yaml", b"foo: bar\n", "has no description (keys: foo)"),
        ("nodesc.json", b'{"name": "x", "verify": ["true"]}', "has no description"),
        ("numdesc.yaml", b"description: 5\n", "description that is a number"),
        ("n.yaml", b"name: t\ndescription: d\nverify: 5\n", "verify is a number (5)"),
        ("s.yaml", b"name: t\ndescription: d\nverify: python -c 1\n", "verify is a single"),
        ("m.yaml", b"description: d\nverify: [{a: 1}, [2]]\n", "verify[0] is a mapping"),
        ("l.yaml", b"description: d\nverify: [ok, [2]]\n", "verify[1] is a list"),
        ("c.json", b'{"description": "d", "checks": {"a": 1}}', "checks is a mapping"),
        ("null.yaml", b"description: d\nverify: [~]\n", "verify[0] is empty, not a command"),
        ("utf16.md", "# Tool\n\nA tool.\n".encode("utf-16"), "is UTF-16 text: save it as UTF-8"),
        ("self.yaml", b"description: d\nparts: &a [x, *a]\n", "an alias (*name) inside what"),
        ("laughs.yaml", LAUGHS, "more than 100000 values (do aliases (*name) expand"),
        ("deep.yaml", b"description: d\na: " + b"[" * 600 + b"]" * 600, "nested more than 100"),
        ("deep.json", b'{"description": "d", "a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested"),
        ("half.yaml", b'description: "a \\ud800 b"\n', "\\ud800 is half of a UTF-16 pair"),
        ("half.json", b'{"description": "a \\udfff"}', "\\udfff is half of a UTF-16 pair"),
    ],
)
def test_bad_spec_files_give_one_clear_line(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = info.value.message
    assert expected in message
    assert "\n" not in message
    assert name in message


def test_yaml_verify_list_reaches_the_checks(tmp_path: Path) -> None:
    from rolecall.workflow.checks import spec_checks

    path = tmp_path / "spec.yaml"
    path.write_text("name: t\ndescription: d\nverify: ['python -c 1', 'ruff check .']\n")
    assert spec_checks(load_spec(path).text) == ["python -c 1", "ruff check ."]


def test_missing_spec_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.md")
    with pytest.raises(SpecError, match="not a file"):
        load_spec(tmp_path)


def test_spec_from_text() -> None:
    assert Spec.from_text("# Hello\nworld").name == "Hello"
    with pytest.raises(SpecError):
        Spec.from_text("  ")


def test_a_huge_spec_is_refused_without_reading_it_into_memory(tmp_path: Path) -> None:
    import resource

    path = tmp_path / "huge.md"
    with path.open("wb") as handle:  # sparse: takes no disk space
        handle.truncate(400_000_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SpecError, match="is 400000000 bytes, over the 1000000-byte limit"):
        load_spec(path)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100_000


def test_an_escaped_surrogate_pair_is_read_as_its_character(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text('name: "party \\ud83c\\udf89"\ndescription: "greet with \\ud83d\\ude00"\n')
    spec = load_spec(path)
    assert spec.name == "party \U0001f389" and "greet with \U0001f600" in spec.text
    spec.text.encode("utf-8")  # what every provider and the state file need
