"""The dockerfile format: detection, the base image it names, and the checks it makes."""

from __future__ import annotations

import pytest

from mlmagic.exceptions import SpecError
from mlmagic.spec import dockerfile
from mlmagic.spec.dockerfile import instructions


@pytest.mark.parametrize(
    ("text", "claimed"),
    [
        ("FROM debian\n", True),
        ("\n\n  from debian:bookworm AS base\n", True),
        ("ARG V=1\nFROM debian:$V\n", True),
        ("# syntax=docker/dockerfile:1.7\n", True),
        ("# escape=`\n# hello\nFROM debian\n", True),
        ("# only a comment\n", False),
        ("RUN echo hi\n", False),
        ("from\n", False),
        ("from: x\n", False),
        ("numpy\nFROM debian\n", False),
        ("", False),
    ],
)
def test_detect(text: str, claimed: bool) -> None:
    assert dockerfile.detect(text) is claimed


def test_parse_keeps_the_text_and_adds_only_a_trailing_newline() -> None:
    text = "# hi\nFROM debian:bookworm\nRUN echo hi"
    spec = dockerfile.parse(text)
    assert spec.format == "dockerfile"
    assert spec.dockerfile == text + "\n"
    assert spec.user_managed is True
    assert spec.base_image == "debian:bookworm"
    assert dockerfile.parse(text + "\n").dockerfile == text + "\n"


@pytest.mark.parametrize(
    ("text", "base"),
    [
        ("FROM python:3.11-slim\n", "python:3.11-slim"),
        ("FROM --platform=linux/arm64 python:3.11 AS build\n", "python:3.11"),
        ("ARG TAG=3.12\nFROM python:${TAG}\n", "python:3.12"),
        ('ARG REPO="my.registry/python" TAG=3.12\nFROM $REPO:$TAG\n', "my.registry/python:3.12"),
        ("FROM python:${TAG:-3.10}\n", "python:3.10"),
        ("ARG TAG\nFROM python:${TAG}\n", "python:${TAG}"),  # unknown: left as written
        ("FROM a AS one\nFROM b AS two\nFROM one\n", "a"),  # a stage resolves to its image
        ("FROM a\nARG X=1\nFROM img:$X\n", "img:$X"),  # ARGs after FROM do not reach FROM
    ],
)
def test_base_image_is_the_image_of_the_last_stage(text: str, base: str) -> None:
    assert dockerfile.parse(text).base_image == base


def test_continuations_and_heredocs_are_not_read_as_instructions() -> None:
    text = (
        "FROM debian\n"
        "RUN apt-get update \\\n"
        "    # a comment inside a continuation\n"
        "\n"
        "    && apt-get install -y curl\n"
        "COPY <<EOF /etc/app.conf\n"
        "setting = 1\n"
        "EOF\n"
        "RUN <<-SCRIPT\n"
        "\tnot an instruction\n"
        "\tSCRIPT\n"
        'CMD ["bash"]\n'
    )
    found = instructions(text)
    assert [(i.line, i.keyword) for i in found] == [
        (1, "FROM"),
        (2, "RUN"),
        (6, "COPY"),
        (9, "RUN"),
        (12, "CMD"),
    ]
    assert found[1].arguments == "apt-get update && apt-get install -y curl"


def test_an_escape_directive_changes_the_continuation_character() -> None:
    text = "# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir `\n    c:\\\n"
    assert [i.keyword for i in instructions(text)] == ["FROM", "RUN"]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("FROM debian\nRUNN echo hi\n", 2, "'RUNN' is not a Dockerfile instruction"),
        ("FROM debian\nRUN echo a\n    echo b\n", 3, "continue it"),
        ("RUN echo hi\nFROM debian\n", 1, "RUN comes before the first FROM"),
        ("ARG X=1\nENV A=1\nFROM debian\n", 2, "only ARG may come before it"),
        ("FROM --platform=linux/amd64\n", 1, "FROM names no image"),
    ],
)
def test_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        dockerfile.parse(text)
    assert info.value.line == line
    assert fragment in str(info.value)


def test_a_dockerfile_without_from_is_refused() -> None:
    with pytest.raises(SpecError, match="has no FROM line; start it with FROM <image>"):
        dockerfile.parse("# syntax=docker/dockerfile:1\nARG X=1\n")


def test_instructions_can_report_lines_of_a_larger_document() -> None:
    with pytest.raises(SpecError) as info:
        instructions("RUN a\nBAD b\n", numbers=[10, 12])
    assert info.value.line == 12
