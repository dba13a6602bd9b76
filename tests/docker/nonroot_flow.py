"""The main flows as a Jupyter user would drive them, run as a non-root user.

``test_non_root_jupyter.py`` runs this file with ``python nonroot_flow.py FOLDER BASE``
as a user it made (in the ``docker`` group, not root). Each step asserts what a user
would see; the last line printed is a JSON summary for the test to check further.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mlmagic import Environment, Workspace
from mlmagic.events import Status

TRAIN = """
import json, os
import mlmagic_run as run

out = run.output_dir()
(out / "nested").mkdir()
(out / "nested" / "note.txt").write_text("made by " + str(os.getuid()))
(out / "weights.json").write_text(json.dumps([1, 2, 3]))
run.log("loss", 0.5)
print("trained as", os.getuid())
"""

SCORE = """
import json, os

def init():
    global weights
    with open(os.path.join(os.environ["MLMAGIC_MODEL_DIR"], "weights.json")) as f:
        weights = json.load(f)

def run(raw_data):
    return {"dot": sum(w * x for w, x in zip(weights, json.loads(raw_data)))}
"""

SLOW = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"


def main(folder: Path, base: str) -> dict[str, object]:
    ws = Workspace(folder / ".mlmagic")
    ws.config.target = "docker"
    project = folder / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    (project / "score.py").write_text(SCORE)
    (project / "slow.py").write_text(SLOW)

    env = Environment.from_text("nonroot-env", "six\n").build(ws, show_output=False)
    assert env.status == "ready", env.status

    run = ws.submit("train.py", env, source_dir=project).wait()
    assert run.status is Status.COMPLETED, run.logs()
    assert run.logs().strip() == f"trained as {os.getuid()}", run.logs()
    assert sorted(run.files()) == ["outputs/nested/note.txt", "outputs/weights.json"]

    slow = ws.submit("slow.py", env, source_dir=project)
    deadline = time.monotonic() + 300
    while "started" not in slow.logs() and time.monotonic() < deadline:
        time.sleep(0.5)
    slow.cancel()
    slow.wait()
    assert slow.status is Status.CANCELED, slow.status

    # An image with its own non-root USER (many published images have one).
    owned = Environment.from_text(
        "nonroot-user-image",
        f"FROM {base}\nRUN echo app:x:4321:4321::/:/bin/sh >> /etc/passwd\nUSER 4321\n",
    ).build(ws, show_output=False)
    in_user_image = ws.submit("train.py", owned, source_dir=project).wait()
    assert in_user_image.status is Status.COMPLETED, in_user_image.logs()

    model = run.register_model("weights", "outputs/weights.json")
    service = ws.deploy(
        "nonroot-svc", models=[model], entry_script="score.py", environment=env,
        source_dir=project,
    )  # fmt: skip
    try:
        answer = service.run([1, 1, 1])
        assert answer == {"dot": 6}, answer
    finally:
        service.delete()
    model.delete()
    assert ws.services.list().empty and ws.models.list().empty
    return {
        "uid": os.getuid(),
        "images": [env.image, owned.image],
        "runs": [run.id, slow.id, in_user_image.id],
    }


if __name__ == "__main__":
    summary = main(Path(sys.argv[1]), sys.argv[2])
    print(json.dumps(summary))
