"""The pip format (requirements.txt in a cell): normalisation, options and errors."""

from __future__ import annotations

import pytest

from mlmagic.exceptions import SpecError
from mlmagic.spec import requirements
from mlmagic.spec.requirements import normalise_requirement, read_lines, sort_requirements


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("numpy", "numpy"),
        ("Scikit_Learn >= 1.5", "scikit-learn>=1.5"),
        ("zope.interface", "zope-interface"),
        ("pandas <3, >=2.2", "pandas<3,>=2.2"),
        ("requests[Socks, security]>=2", "requests[security,socks]>=2"),
        ("tomli; python_version<'3.11'", 'tomli; python_version < "3.11"'),
        (
            "Torch @ https://example.org/torch-2.4.0-py3-none-any.whl",
            "torch @ https://example.org/torch-2.4.0-py3-none-any.whl",
        ),
        ("foo @ git+https://github.com/o/foo.git@v1", "foo @ git+https://github.com/o/foo.git@v1"),
        (
            "foo@https://example.org/foo.whl ;sys_platform=='linux'",
            'foo @ https://example.org/foo.whl ; sys_platform == "linux"',
        ),
    ],
)
def test_normalise_requirement(text: str, expected: str) -> None:
    assert normalise_requirement(text) == expected
    # Normalising is idempotent: what is stored reads back the same.
    assert normalise_requirement(expected) == expected


def test_sort_requirements_orders_by_name_and_drops_repeats() -> None:
    lines = ["foo>=1", "foo-bar", "a", "foo>=1", "foo<2"]
    assert sort_requirements(lines) == ("a", "foo<2", "foo>=1", "foo-bar")


def test_comments_blank_lines_and_continuations() -> None:
    spec = requirements.parse(
        "# heading\n\nnumpy  # why\n   \npandas\\\n>=2\\\n,<3\n"
        "torch @ https://example.org/t.whl#sha256=abc\n"
    )
    assert spec.pip == ("numpy", "pandas<3,>=2", "torch @ https://example.org/t.whl#sha256=abc")


def test_index_options() -> None:
    spec = requirements.parse(
        "-i https://a.example/simple\n"
        "--index-url=https://b.example/simple\n"
        "--extra-index-url https://c.example/simple\n"
        "--extra-index-url=https://d.example/simple\n"
        "--extra-index-url https://c.example/simple\n"
        "six\n"
    )
    assert spec.index_url == "https://b.example/simple"  # the last one wins, as in pip
    assert spec.extra_index_urls == ("https://c.example/simple", "https://d.example/simple")
    assert spec.format == "pip" and spec.pip == ("six",)


def test_read_lines_keeps_the_given_line_numbers() -> None:
    with pytest.raises(SpecError) as info:
        read_lines([(7, "six"), (9, "not valid!")])
    assert info.value.line == 9


@pytest.mark.parametrize(
    ("text", "line", "fragments"),
    [
        ("six\n-r other.txt\n", 2, ["a requirements file", "a cell has no files beside it"]),
        ("--requirement=other.txt\n", 1, ["a requirements file", "from_requirements"]),
        ("six\n\n-c constraints.txt\n", 3, ["a constraints file", "list the packages"]),
        ("--constraint c.txt\n", 1, ["a constraints file"]),
        ("-e .\n", 1, ["editable install", "list the package itself"]),
        ("--editable git+https://h/r.git#egg=r\n", 1, ["editable", "name @ git+https"]),
        ("six\n--trusted-host example.org\n", 2, ["--trusted-host is not supported", "Remove"]),
        ("--foo\n", 1, ["--foo is not supported", "--index-url"]),
        ("--index-url\n", 1, ["--index-url takes one URL"]),
        ("six==1.16 --hash=sha256:abc\n", 1, ["--hash", "Remove the option"]),
    ],
)
def test_refused_options(text: str, line: int, fragments: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        requirements.parse(text)
    assert info.value.line == line
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("six\nnumpy>=>1\n", 2),
        ("numpy==1.26 extra\n", 1),
        ("numpy[\n", 1),
        ("six\n# ok\nfoo bar baz\n", 3),
        ("pandas\\\n>==2\nsix\n", 1),  # a continued requirement reports its first line
    ],
)
def test_an_unparsable_requirement_names_its_line_and_a_valid_form(text: str, line: int) -> None:
    with pytest.raises(SpecError) as info:
        requirements.parse(text)
    assert info.value.line == line
    message = str(info.value)
    assert message.startswith(f"line {line}: ")
    assert "is not a valid requirement" in message
    assert "for example: pandas>=2.2" in message


def test_detect_claims_anything() -> None:
    assert requirements.detect("anything at all")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("pip:\n  - six\n bad: [\n", 3, "the YAML does not parse"),
        ("pip: [six\n", 2, "the YAML does not parse"),
        ("a: b\n\tc: d\n", 2, "YAML does not allow tabs"),
        ("- six\n- numpy\n", 1, "put the list under a key (pip: for pip packages"),
    ],
)
def test_text_meant_as_yaml_gets_the_yaml_error(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        requirements.parse(text)
    assert info.value.line == line
    assert fragment in str(info.value)
