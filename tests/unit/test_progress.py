"""BuildKit plain-progress parsing, on output captured from a real docker 20.10 build."""

from __future__ import annotations

from mlmagic.engine.progress import ProgressParser
from mlmagic.events import BuildEventKind

OUTPUT = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:4cfaf2a25f34
#1 transferring dockerfile: 177B done
#1 DONE 0.0s

#4 [1/4] FROM docker.io/library/mlmagic-base:bookworm
#4 DONE 0.0s

#5 [2/4] RUN echo hello && echo err >&2
#5 sha256:2391c16a1236
#5 0.160 hello
#5 0.160 err
#5 DONE 0.2s

#6 [3/4] RUN uv venv /opt/mlmagic/env
#6 CACHED

#7 [4/4] RUN false
#7 sha256:d73607edfbb9
#7 0.101 about to fail
#7 ERROR: executor failed running [/bin/sh -c false]: exit code: 1
------
 > [4/4] RUN false:
------
executor failed running [/bin/sh -c false]: exit code: 1
"""


def test_steps_logs_cache_and_failure() -> None:
    parser = ProgressParser()
    events = [e for line in OUTPUT.splitlines() for e in parser.feed(line)]
    steps = [e.step for e in events if e.kind is BuildEventKind.STEP]
    assert steps == [
        "[1/4] FROM docker.io/library/mlmagic-base:bookworm",
        "[2/4] RUN echo hello && echo err >&2",
        "[3/4] RUN uv venv /opt/mlmagic/env",
        "[4/4] RUN false",
    ]
    logs = [e.message for e in events if e.kind is BuildEventKind.LOG]
    assert logs[:3] == ["hello", "err", "about to fail"]
    done = {e.step: e.cached for e in events if e.kind is BuildEventKind.STEP_DONE}
    assert done["[3/4] RUN uv venv /opt/mlmagic/env"] is True
    assert done["[2/4] RUN echo hello && echo err >&2"] is False
    assert parser.failed_step == "[4/4] RUN false"
    # BuildKit's own error line ends the tail: it carries the exit code.
    assert parser.failed_tail == [
        "about to fail",
        "executor failed running [/bin/sh -c false]: exit code: 1",
    ]
    assert all(e.step_count == 4 for e in events if e.kind is BuildEventKind.STEP)


def test_named_stages_are_steps() -> None:
    parser = ProgressParser()
    events = list(parser.feed("#3 [builder 2/5] RUN make"))
    assert events[0].step == "[2/5] RUN make" and events[0].step_index == 2
