"""Cell text → EnvironmentSpec: golden files, format detection and normalisation.

Golden files live in ``tests/unit/golden/spec/``: each input (``<case>.txt`` for pip,
``<case>.yml`` for conda and mlmagic YAML, ``<case>.Dockerfile``) is parsed with format
detection, and ``spec.to_dict()`` is compared with ``<case>.json`` beside it; the case's
name starts with the format it must be detected as. Run with ``MLMAGIC_UPDATE_GOLDEN=1``
to rewrite the JSON after an intended change, and review the diff.

The error paths and details of each format are in ``test_spec_<format>.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlmagic.exceptions import SpecError
from mlmagic.spec import EnvironmentSpec, detect_format, parse

GOLDEN = Path(__file__).parent / "golden" / "spec"
INPUTS = sorted(p for p in GOLDEN.iterdir() if p.suffix != ".json")


def test_there_are_golden_cases_for_every_format() -> None:
    prefixes = {p.name.split("-")[0] for p in INPUTS}
    assert prefixes == {"pip", "conda", "yaml", "dockerfile"}


@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
def test_parse_matches_golden(path: Path) -> None:
    spec = parse(path.read_text())
    assert spec.format == path.name.split("-")[0]
    data = json.loads(json.dumps(spec.to_dict()))  # tuples as JSON lists
    golden = path.with_suffix(".json")
    if os.environ.get("MLMAGIC_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert data == json.loads(golden.read_text())
    # What is stored comes back as the same spec.
    assert EnvironmentSpec.from_dict(data) == spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Requirements that YAML reads as one string (or cannot read) are not claimed.
        ("numpy\npandas>=2\n", "pip"),
        ("numpy\n", "pip"),
        ("# just pins\nscikit-learn==1.5.2  # comment\n", "pip"),
        ('tomli ; python_version < "3.11"\n', "pip"),
        ("torch @ https://example.org/torch-2.4.0-py3-none-any.whl\n", "pip"),
        ("--index-url https://example.org/simple\nsix\n", "pip"),
        ("-e .\n", "pip"),
        ("@weird\n", "pip"),
        # Dockerfiles, including ones that start with comments or ARG.
        ("FROM python:3.11\nRUN pip install six\n", "dockerfile"),
        ("# build me\n\n# really\nFROM debian:bookworm\n", "dockerfile"),
        ("# syntax=docker/dockerfile:1\nFROM debian\n", "dockerfile"),
        ("ARG BASE=debian\nFROM $BASE\n", "dockerfile"),
        ("from debian\n", "dockerfile"),
        # Conda files, with or without a name.
        ("dependencies:\n  - numpy\n", "conda"),
        ("name: x\nchannels: [conda-forge]\ndependencies: [numpy]\n", "conda"),
        # Any other mapping is mlmagic YAML, even with unknown keys.
        ("pip: [six]\n", "yaml"),
        ("pip: []\n", "yaml"),
        ("{}\n", "yaml"),
        ("packages: [six]\n", "yaml"),
    ],
)
def test_detect_format(text: str, expected: str) -> None:
    assert detect_format(text) == expected


def test_an_unknown_yaml_key_is_an_unknown_key_error_not_a_pip_error() -> None:
    with pytest.raises(SpecError, match="'packages' is not a key of mlmagic YAML") as info:
        parse("packages: [six]\n")
    assert info.value.line == 1


def test_detection_never_raises_on_bad_yaml() -> None:
    text = "pip: [six\n"
    assert detect_format(text) == "pip"


@pytest.mark.parametrize(
    "text",
    [
        "pandas>=2\nscikit-learn==1.5.2\n",
        "scikit-learn==1.5.2\n\n   pandas >= 2   # trailing\n",
        "# comment\nSCIKIT_LEARN == 1.5.2\npandas>=2\npandas >=2\n",
        "scikit-learn\\\n==1.5.2\npandas>=2\n",
    ],
)
def test_reformatting_requirements_gives_an_equal_spec(text: str) -> None:
    reference = parse("pandas>=2\nscikit-learn==1.5.2\n")
    spec = parse(text)
    assert spec == reference
    assert spec.normalised() == reference.normalised()


def test_the_same_packages_in_any_format_normalise_the_same() -> None:
    pip = parse("pandas>=2\nscikit-learn==1.5.2\n")
    yaml = parse("pip:\n  - scikit-learn==1.5.2\n  - pandas>=2\n")
    conda = parse("dependencies:\n  - pip:\n    - pandas>=2\n    - scikit-learn==1.5.2\n")
    assert pip.normalised() == yaml.normalised() == conda.normalised()


def test_reordering_a_conda_file_gives_an_equal_spec() -> None:
    a = parse("name: a\ndependencies:\n  - numpy=1.26\n  - pandas\n  - python=3.11\n")
    b = parse("dependencies: [python=3.11, pandas, 'numpy  =1.26']\nname: b\n")
    assert a == b


def test_dockerfile_comments_do_not_change_the_normalised_spec() -> None:
    a = parse("FROM debian:bookworm\nRUN echo hi\n")
    b = parse("# a comment\nFROM debian:bookworm\n\nRUN echo hi   \n")
    assert a != b  # the text is kept as written...
    assert a.normalised() == b.normalised()  # ...but only instructions decide the image


def test_with_options_on_a_dockerfile_refuses_what_the_file_decides() -> None:
    spec = parse("FROM debian:bookworm\n")
    assert spec.with_options(gpu=True).gpu is True
    for option in ({"base_image": "python:3.12"}, {"python": "3.12"}, {"solver": "conda"}):
        with pytest.raises(SpecError, match="Edit the FROM line"):
            spec.with_options(**option)


def test_with_options_override_the_text() -> None:
    spec = parse("python: '3.11'\npip: [six]\n").with_options(python="3.12", gpu=True)
    assert (spec.python, spec.gpu) == ("3.12", True)


@pytest.mark.parametrize("text", ["", "  \n\n", "\t"])
def test_an_empty_cell_is_refused(text: str) -> None:
    with pytest.raises(SpecError, match="empty"):
        parse(text)


def test_an_explicit_format_skips_detection() -> None:
    # A one-line YAML mapping is still read as requirements when asked to, and fails there.
    with pytest.raises(SpecError, match="not a valid requirement"):
        parse("pip: [six]\n", format="pip")
    assert parse("six\n", format="pip").pip == ("six",)
