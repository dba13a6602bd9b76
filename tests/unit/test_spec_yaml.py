"""mlmagic's own YAML: every key, the python float trap, and the errors."""

from __future__ import annotations

import pytest

from mlmagic.exceptions import SpecError
from mlmagic.spec import RegistryLogin, mlmagic_yaml
from mlmagic.spec.conda import pip_beyond_conda, unmapped
from mlmagic.spec.curated import CURATED


@pytest.mark.parametrize(
    ("written", "python"),
    [
        ("3.10", "3.10"),  # YAML reads this as the number 3.1; the text is what was meant
        ("3.11", "3.11"),
        ("'3.10'", "3.10"),
        ('"3.12"', "3.12"),
        ("3.9", "3.9"),
        ("", None),
    ],
)
def test_python_is_read_as_written(written: str, python: str | None) -> None:
    assert mlmagic_yaml.parse(f"pip: [six]\npython: {written}\n").python == python


@pytest.mark.parametrize("written", ["3", "3.11.4", "'3.x'", "2.7", "true", "[3.11]"])
def test_a_python_that_is_not_3_x_is_refused(written: str) -> None:
    with pytest.raises(SpecError, match="python must be a Python version of the form 3.X") as info:
        mlmagic_yaml.parse(f"pip: [six]\npython: {written}\n")
    assert info.value.line == 2


def test_single_strings_count_as_one_item_lists() -> None:
    spec = mlmagic_yaml.parse("apt: git\npip: six\nchannels: conda-forge\nconda: numpy\n")
    assert spec.apt == ("git",)
    assert spec.pip == ("numpy", "six")
    assert spec.channels == ("conda-forge",)
    assert spec.conda == ("numpy",)


def test_pip_is_normalised_like_requirements() -> None:
    spec = mlmagic_yaml.parse("pip:\n  - Scikit_Learn >= 1.5\n  - six  # comment\n  - six\n")
    assert spec.pip == ("scikit-learn>=1.5", "six")


def test_index_options_in_the_pip_list_merge_with_the_keys() -> None:
    spec = mlmagic_yaml.parse(
        "extra_index_urls: [https://a.example/simple]\n"
        "pip: ['--extra-index-url https://b.example/simple', six]\n"
        "index_url: https://pypi.org/simple\n"
    )
    assert spec.index_url == "https://pypi.org/simple"
    assert spec.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")


def test_conda_key_behaves_like_a_conda_file() -> None:
    spec = mlmagic_yaml.parse("conda: [python=3.12, pytorch=2.4, mkl]\npip: [tomli]\n")
    assert spec.python == "3.12"
    assert spec.conda == ("mkl", "pytorch=2.4")
    assert spec.pip == ("tomli", "torch==2.4.*")
    assert unmapped(spec) == ["mkl"]
    assert pip_beyond_conda(spec) == ("tomli",)


def test_env_values_are_text_as_written() -> None:
    spec = mlmagic_yaml.parse("env:\n  Z: 0.10\n  A: yes\n  M: 'quoted: text'\n  E:\n")
    assert spec.env == (("A", "yes"), ("E", ""), ("M", "quoted: text"), ("Z", "0.10"))


def test_dockerfile_steps_as_a_list_or_a_block() -> None:
    as_list = mlmagic_yaml.parse("dockerfile_steps:\n  - RUN echo a\n  - 'USER nobody'\n")
    as_block = mlmagic_yaml.parse("dockerfile_steps: |\n  RUN echo a\n\n  USER nobody\n")
    assert as_list.dockerfile_steps == as_block.dockerfile_steps == ("RUN echo a", "USER nobody")


def test_registry_login() -> None:
    spec = mlmagic_yaml.parse(
        "base_image: registry.example.com/team/py:3.11\n"
        "registry: {address: registry.example.com, username: me}\n"
    )
    assert spec.registry == RegistryLogin("registry.example.com", "me", None)
    assert spec.normalised()["registry"] == {"address": "registry.example.com"}


def test_every_curated_environment_parses() -> None:
    for name, text in CURATED.items():
        assert mlmagic_yaml.parse(text).format == "yaml", name


@pytest.mark.parametrize(
    ("text", "line", "fragments"),
    [
        ("pip: [six]\npackages: [x]\n", 2, ["'packages' is not a key", "base_image", "pip"]),
        ("gpu: maybe\n", 1, ["gpu must be true or false", "maybe"]),
        ("pip: [six]\nuser_managed: 1\n", 2, ["user_managed must be true or false"]),
        ("apt: [git]\napt2: x\n", 2, ["'apt2' is not a key"]),
        ("apt: {git: 1}\n", 1, ["apt must be a list of strings"]),
        ("apt:\n  - git\n  - 7\n", 3, ["item 2 of apt is the number 7"]),
        ("apt: ['curl git']\n", 1, ["is not a Debian package name", "one name per item"]),
        ("apt: ['curl; rm -rf /']\n", 1, ["is not a Debian package name"]),
        ("pip:\n  - six\n  - -e .\n", 3, ["editable", "no files beside it"]),
        ("pip:\n  - six\n  - 'bad req!'\n", 3, ["not a valid requirement"]),
        ("solver: mamba\n", 1, ["solver must be one of uv, conda"]),
        ("base_image: [a]\n", 1, ["base_image must be text"]),
        ("base_image: 'a b'\n", 1, ["base_image must be one word"]),
        ("env: [A]\n", 1, ["env must be a mapping"]),
        ("env:\n  A: [1]\n", 2, ["the value of A under env is a list"]),
        ("env:\n  A-B: 1\n", 2, ["not an environment variable name"]),
        ("conda: ['>=1']\n", 1, ["is not a conda package spec"]),
        ("python: '3.11'\nconda: [python=3.12]\n", 1, ["python is 3.11 but conda asks"]),
        (
            "index_url: https://a/simple\npip: ['-i https://b/simple']\n",
            1,
            ["keep one of them"],
        ),
        ("user_managed: true\npip: [six]\n", 1, ["installs nothing", "remove the packages"]),
        ("dockerfile_steps: ['RUN a', 'RUNN b']\n", 1, ["'RUNN' is not a Dockerfile instruction"]),
        ("dockerfile_steps: |\n  RUN a\n  RUNN b\n", 3, ["'RUNN' is not a Dockerfile"]),
        ("dockerfile_steps:\n  - RUN a\n  - FROM debian\n", 3, ["may not hold FROM", "base_image"]),
        ("registry: me@example.com\n", 1, ["registry must be a mapping"]),
        ("registry:\n  address: r.example\n  username: me\n  token: x\n", 4, ["'token'"]),
        ("registry:\n  address: r.example\n", 1, ["registry needs username"]),
        (
            "registry:\n  address: r.example\n  username: me\n  password_env: my-token\n",
            4,
            ["not a variable name"],
        ),
        ("pip: [six\n", 2, ["the YAML does not parse"]),
        ("pip: [six]\npip: [numpy]\n", 2, ["'pip' is given twice (first on line 1)"]),
        ("- six\n", 1, ["mlmagic YAML is a mapping"]),
    ],
)
def test_errors_name_the_line_and_the_fix(text: str, line: int, fragments: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        mlmagic_yaml.parse(text)
    assert info.value.line == line
    for fragment in fragments:
        assert fragment in str(info.value)


def test_a_password_in_the_cell_is_refused_without_echoing_it() -> None:
    text = "registry:\n  address: r.example\n  username: me\n  password: hunter2\n"
    with pytest.raises(SpecError) as info:
        mlmagic_yaml.parse(text)
    message = str(info.value)
    assert info.value.line == 4
    assert "never put a password in the cell" in message
    assert "password_env" in message and "docker login" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("text", "claimed"),
    [
        ("pip: [six]\n", True),
        ("anything: at all\n", True),
        ("{}\n", True),
        ("numpy\npandas>=2\n", False),  # YAML reads requirements as one string
        ("- six\n", False),
        ("pip: [six\n", False),
    ],
)
def test_detect(text: str, claimed: bool) -> None:
    assert mlmagic_yaml.detect(text) is claimed
