"""The bounded-memory JSON check of request bodies, against :func:`json.loads` itself."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlmagic.serve.jsonbody import check_json

ROOT = Path(__file__).resolve().parents[2]


def _is_json(text: str, **options: int) -> bool:
    try:
        check_json(text, **options)
    except ValueError:
        return False
    return True


def _loads(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _document(rng: random.Random, depth: int = 0) -> object:
    choice = rng.random()
    if depth > 4 or choice < 0.4:
        return rng.choice(
            [0, -1.5e3, 12, "a,b", 'x"]}', "", "\u00e9\u4e2d", True, None, float("nan"), "\\,"]
        )
    if choice < 0.7:
        return [_document(rng, depth + 1) for _ in range(rng.randrange(6))]
    keys = ["k", "a,b", "", "{"]
    return {rng.choice(keys) + str(i): _document(rng, depth + 1) for i in range(rng.randrange(5))}


def _variants(rng: random.Random, count: int) -> list[str]:
    """Valid documents, and each cut, with a character inserted, or with one removed."""
    texts = []
    for _ in range(count):
        text = json.dumps(_document(rng), indent=rng.choice([None, 1]))
        texts.append(text)
        for _ in range(3):
            at = rng.randrange(len(text) + 1)
            inserted = rng.choice(',]}[{:" x1e.-\\')
            texts += [text[:at], text[:at] + inserted + text[at:], text[:at] + text[at + 1 :]]
    return texts


@pytest.mark.parametrize("window", [2, 3, 5, 13, 40, 1 << 18])
def test_it_accepts_exactly_what_json_loads_accepts(window: int) -> None:
    texts = _variants(random.Random(window), 300)
    verdicts = [(_loads(text), _is_json(text, window=window)) for text in texts]
    assert sum(expected for expected, _ in verdicts) > len(texts) // 10  # both kinds are tried
    mismatches = [text for text, (want, got) in zip(texts, verdicts, strict=True) if want != got]
    assert mismatches == []


@pytest.mark.parametrize(
    "text",
    ["", "  ", "[1]x", "[1 2]", "[1,]", '{"a" 1}', '{"a": 1,}', "nul", "[-NaN]", '"\x01"'],
)
def test_errors_are_json_decode_errors(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        check_json(text, window=3)


def test_nesting_is_bounded() -> None:
    deep = "[" * 50 + "]" * 50
    assert _is_json(deep, window=4, max_depth=50)
    with pytest.raises(json.JSONDecodeError, match="Nested more than 40 levels deep"):
        check_json(deep, window=4, max_depth=40)
    assert not _is_json("[" * 100_000 + "]" * 100_000)


def test_a_body_of_empty_lists_is_checked_in_bounded_memory(tmp_path: Path) -> None:
    # json.loads builds 4 million lists here: about 300 MiB for a 12 MiB body.
    code = textwrap.dedent(
        """
        import resource, sys
        from mlmagic.serve.jsonbody import check_json
        text = "[" + ",[]" * 4_000_000 + "]"
        text = text.replace("[,", "[", 1)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        check_json(text)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 40, f"the check grew the peak memory by {result.stdout} MiB"
