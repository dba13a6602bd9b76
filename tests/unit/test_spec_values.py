"""No value of an environment definition can add a Dockerfile instruction.

Every field but ``dockerfile`` and ``dockerfile_steps`` is written into a line of the
rendered Dockerfile; a line break in one would start an instruction of its own. Such
values are refused when the spec is made, in one line naming the field, whatever format
or option they came from.
"""

from __future__ import annotations

import dataclasses

import pytest

from mlmagic.build.dockerfile import ResolvedBase, render
from mlmagic.exceptions import SpecError
from mlmagic.spec import EnvironmentSpec, RegistryLogin, parse
from mlmagic.spec.dockerfile import instructions

BASE = ResolvedBase(image="python:3.11-slim", python="3.11")
INJECTED = "RUN touch /pwned"


def _keywords(spec: EnvironmentSpec) -> list[str]:
    return [step.keyword for step in instructions(render(spec, BASE))]


def _refused(make, field: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as info:
        make()
    message = str(info.value)
    assert "\n" not in message and field in message, message
    return message


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (f'pip: [six]\nenv: {{GREETING: "hello\\n{INJECTED}"}}\n', "env value of GREETING"),
        (f'pip: [six]\nenv: {{GREETING: "hello\\r\\n{INJECTED}"}}\n', "env value of GREETING"),
        (f'pip: [six]\nenv: {{"A\\n{INJECTED}": x}}\n', "is not an environment variable name"),
        ('pip: [six]\nenv: {"A\\n": x}\n', "is not an environment variable name"),
        (
            f'pip: [six]\nextra_index_urls: ["https://a.example/simple\\n{INJECTED}"]\n',
            "extra_index_urls",
        ),
        (f'solver: conda\nconda: ["chan\\n{INJECTED}::numpy"]\n', "conda"),
        (
            f'name: x\nvariables: {{MSG: "a\\n{INJECTED}"}}\ndependencies: [python=3.11]\n',
            "env value of MSG",
        ),
    ],
)
def test_a_line_break_in_a_value_is_refused_naming_the_field(text: str, field: str) -> None:
    _refused(lambda: parse(text), field)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"base_image": f"python:3.11-slim\n{INJECTED}"}, "base_image"),
        ({"base_image": "python:3.11-slim\\"}, "base_image"),
        ({"base_image": "python:3.11-slim AS other"}, "base_image"),
        ({"python": "3.11\n"}, "3.11"),
    ],
)
def test_options_from_the_magic_line_are_held_to_the_same_rule(options, field) -> None:  # type: ignore[no-untyped-def]
    spec = parse("six\n")
    _refused(lambda: spec.with_options(**options), field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"index_url": f"https://a.example/simple\n{INJECTED}"}, "index_url"),
        ({"apt": ("git\n",)}, "apt"),
        ({"pip": (f"six\n--index-url http://evil.example\n{INJECTED}",)}, "pip"),
        ({"channels": (f"conda-forge\n{INJECTED}",)}, "channels"),
        ({"env": (("A", "\x00"),)}, "env value of A"),
        ({"registry": RegistryLogin("r.example\n", "me")}, "registry address"),
    ],
)
def test_every_rendered_field_is_checked_however_the_spec_is_made(changes, field) -> None:  # type: ignore[no-untyped-def]
    spec = parse("six\n")
    _refused(lambda: dataclasses.replace(spec, **changes), field)
    stored = {**spec.to_dict(), **changes}
    if "registry" in changes:
        stored["registry"] = dataclasses.asdict(changes["registry"])
    _refused(lambda: EnvironmentSpec.from_dict(stored), field)


def test_values_with_quotes_dollars_tabs_and_backslashes_stay_on_their_line() -> None:
    text = (
        "pip: [six]\n"
        "extra_index_urls: ['https://a.example/simple?x=1&y=$HOME']\n"
        "env:\n"
        "  QUOTED: 'say \"hi\" to $USER'\n"
        '  TABBED: "a\\tb"\n'
        "  WINDOWS: 'C:\\dir\\'\n"
        "  EMPTY:\n"
    )
    spec = parse(text)
    assert dict(spec.env)["WINDOWS"] == "C:\\dir\\"
    keywords = _keywords(spec)
    # The env values make one ENV instruction, and nothing else is added.
    assert keywords.count("ENV") == 3 and keywords[-1] == "ENV"
    assert keywords == _keywords(dataclasses.replace(spec, env=(("A", "1"),)))
    assert "/pwned" not in render(spec, BASE)
