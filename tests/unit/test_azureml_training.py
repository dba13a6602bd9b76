"""Azure ML SDK v1 training code on mlmagic.azureml, on the local target (real runs).

The code in these tests is written the way an Azure ML v1 user writes it, imported
through the ``azureml`` aliases; each run is a real process in a real virtual environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlmagic.azureml
from mlmagic.azureml.unsupported import NotSupportedLocally
from mlmagic.exceptions import MlmagicError, NotFoundError, RunError, SpecError

SCRIPT = """\
import argparse, os
from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data-folder")
parser.add_argument("--lr", type=float)
args = parser.parse_args()
run = Run.get_context()
print("offline" if run.offline else "online", sorted(os.listdir(args.data_folder)))
for i in range(3):
    run.log("loss", 1.0 / (i + 1))
run.log("lr", args.lr)
run.log("note", "fine")
run.log_list("accuracies", [0.5, 0.75])
run.log_row("table", epoch=1, acc=0.9)
run.log_table("cols", {"x": [1, 2]})
run.tag("stage", "unit")
print("experiment", run.experiment.name)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as f:
    f.write("weights")
run.upload_file("outputs/uploaded.txt", __file__)
"""


@pytest.fixture
def azureml(local_ws):
    """``azureml.*`` aliased to mlmagic's layer, the real SDK absent; removed after."""
    assert mlmagic.azureml.install(quiet=True)
    yield local_ws
    mlmagic.azureml.uninstall()


@pytest.fixture
def ws(azureml):
    from azureml.core import Workspace

    return Workspace(_workspace=azureml)


def test_aliases_are_the_same_modules(azureml):
    import azureml.core
    import azureml.core.conda_dependencies
    import azureml.core.environment
    import azureml.core.runconfig
    import azureml.core.script_run_config
    import azureml.train.dnn
    import azureml.widgets
    from azureml.core.compute import AmlCompute, ComputeTarget

    import mlmagic.azureml.core as ours

    assert azureml.core is ours
    assert azureml.core.environment.Environment is ours.Environment
    assert azureml.core.runconfig.DockerConfiguration.__module__ == ours.runconfig.__name__
    assert azureml.core.script_run_config.ScriptRunConfig is ours.ScriptRunConfig
    assert issubclass(AmlCompute, ComputeTarget)
    assert azureml.train.dnn.TensorFlow.__module__ == "mlmagic.azureml.train.dnn"
    assert azureml.widgets.RunDetails.__module__ == "mlmagic.azureml.widgets"


def test_common_imports_of_azure_notebooks(azureml):
    from azureml.core import ContainerRegistry, Workspace
    from azureml.core.authentication import (
        InteractiveLoginAuthentication,
        ServicePrincipalAuthentication,
    )
    from azureml.core.environment import CondaDependencies
    from azureml.core.runconfig import DEFAULT_CPU_IMAGE

    auth = ServicePrincipalAuthentication("tenant", "app", service_principal_password="pw")
    assert "pw" not in repr(vars(auth))
    ws = Workspace("sub", "rg", "name", auth=InteractiveLoginAuthentication(tenant_id="t"))
    assert ws.name == "name" and CondaDependencies.create().pip_packages == []
    assert DEFAULT_CPU_IMAGE.startswith("mcr.microsoft.com/azureml/")
    assert ContainerRegistry(address="r.example").password is None


def test_real_sdk_is_left_alone(tmp_path, capsys):
    fake = tmp_path / "azureml" / "core"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("REAL = True\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert mlmagic.azureml.install() is False
        assert "azureml-core) is installed" in capsys.readouterr().out
        import azureml.core

        assert azureml.core.REAL is True
    finally:
        sys.path.remove(str(tmp_path))
        mlmagic.azureml.uninstall()


@pytest.mark.parametrize(
    ("statement", "words"),
    [
        ("from azureml.train.hyperdrive import HyperDriveConfig", "submit one run per setting"),
        ("from azureml.train.automl import AutoMLConfig", "train the candidate models"),
        ("from azureml.pipeline.core import Pipeline", "submit each step as its own run"),
        ("from azureml.pipeline.steps import PythonScriptStep", "submit each step"),
        ("from azureml.core import Dataset", "ws.get_default_datastore().upload"),
        ("from azureml.data import OutputFileDatasetConfig", "as_mount()"),
        ("from azureml.train import hyperdrive; hyperdrive.GridParameterSampling", "in a loop"),
        ("from azureml import pipeline; pipeline.core", "submit each step"),
    ],
)
def test_cloud_only_names_fail_in_one_line(azureml, statement, words):
    with pytest.raises(NotSupportedLocally) as info:
        exec(statement, {})
    message = str(info.value)
    assert "\n" not in message and words in message and "Azure ML service" in message


def test_build_with_image_build_compute_is_refused(ws):
    from azureml.core import Environment

    with pytest.raises(NotSupportedLocally, match="built on this machine's Docker engine"):
        Environment("e").build(ws, image_build_compute="cpu-cluster")


def test_environment_from_files_register_get_list(ws, tmp_path):
    from azureml.core import Environment

    (tmp_path / "requirements.txt").write_text("six\nazureml-defaults\n")
    (tmp_path / "env.yml").write_text(
        "name: x\nchannels: [conda-forge]\ndependencies:\n  - numpy=1.26\n  - pip:\n    - six\n"
    )
    pip_env = Environment.from_pip_requirements("pip-env", tmp_path / "requirements.txt")
    first = pip_env.register(ws)
    assert first.version == "1"
    # The SDK's own packages stay out of the image.
    assert first.to_mlmagic().spec.pip == ("six",)
    pip_env.python.conda_dependencies.add_pip_package("idna")
    pip_env.environment_variables = {"MODE": "test"}
    second = pip_env.register(ws)
    assert second.version == "2"
    assert Environment.get(ws, "pip-env", version="1").python.conda_dependencies.pip_packages == [
        "six"
    ]
    assert Environment.get(ws, "pip-env").environment_variables == {"MODE": "test"}
    conda_env = Environment.from_conda_specification("conda-env", tmp_path / "env.yml")
    registered = conda_env.register(ws)
    assert registered.python.conda_dependencies.conda_channels == ["conda-forge"]
    assert "numpy=1.26" in registered.python.conda_dependencies.conda_packages
    listed = Environment.list(ws)
    assert isinstance(listed, dict) and sorted(listed) == ["conda-env", "pip-env"]
    assert listed["pip-env"].version == "2"
    with pytest.raises(NotFoundError, match="not a number"):
        Environment.get(ws, "pip-env", version="latest")


def test_build_and_image_details(ws, capsys):
    from azureml.core import Environment
    from azureml.core.conda_dependencies import CondaDependencies

    env = Environment("built-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
    build = env.build(workspace=ws)
    assert build.wait_for_completion(show_output=False).status == "Succeeded"
    assert env.version == "1"
    details = env.get_image_details(ws)
    assert details["status"] == "ready" and details["environment"] == "built-env:1"
    env.build_local(ws)
    assert env.version == "1"


def test_reserved_and_curated_names(ws):
    from azureml.core import Environment

    with pytest.raises(SpecError, match="reserved for curated environments"):
        Environment("AzureML-mine").register(ws)
    curated = Environment.get(ws, "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu")
    assert curated.name.startswith("AzureML-sklearn")
    assert any(p.startswith("scikit-learn") for p in curated.to_mlmagic().spec.pip)
    with pytest.raises(NotFoundError, match="no local counterpart"):
        Environment.get(ws, "AzureML-TensorFlow-2.3-CPU")


def test_docker_section_and_password_never_stored(ws, tmp_path):
    from azureml.core import Environment

    env = Environment("private-base")
    env.docker.base_image = "registry.example/team/base:1"
    env.docker.base_image_registry.address = "registry.example"
    env.docker.base_image_registry.username = "me"
    env.docker.base_image_registry.password = "hunter2-secret"
    env.python.user_managed_dependencies = True
    registered = env.register(ws)
    spec = registered.to_mlmagic().spec
    assert spec.base_image == "registry.example/team/base:1" and spec.user_managed
    assert spec.registry is not None and spec.registry.username == "me"
    # The build reads it from this process's environment, under the name the spec keeps.
    assert spec.registry.password_env is not None
    assert os.environ.pop(spec.registry.password_env) == "hunter2-secret"
    env.save_to_directory(tmp_path / "saved")
    for path in [*ws.mlmagic.root.rglob("*"), *(tmp_path / "saved").rglob("*")]:
        if path.is_file():
            assert b"hunter2-secret" not in path.read_bytes(), path


def test_from_docker_image(ws, tmp_path):
    from azureml.core import ContainerRegistry, Environment

    as_is = Environment.from_docker_image("img-env", "python:3.11-slim")
    assert as_is.to_mlmagic().spec.user_managed and as_is.docker.base_image == "python:3.11-slim"
    (tmp_path / "r.txt").write_text("six\n")
    registry = ContainerRegistry(address="r.example", username="u")
    with_pip = Environment.from_docker_image(
        "img-pip",
        "r.example/base:1",
        container_registry=registry,
        pip_requirements=tmp_path / "r.txt",
    )
    spec = with_pip.to_mlmagic().spec
    assert spec.pip == ("six",) and spec.base_image == "r.example/base:1"
    assert spec.registry is not None and spec.registry.address == "r.example"


def test_azure_default_base_image_becomes_ours(ws):
    from azureml.core import Environment

    env = Environment("defaults")
    assert env.docker.base_image.startswith("mcr.microsoft.com/azureml/")
    assert env.to_mlmagic().spec.base_image is None


def test_conda_dependencies(tmp_path):
    from mlmagic.azureml.core import CondaDependencies

    deps = CondaDependencies.create(
        pip_packages=["scikit-learn==1.5.0"], conda_packages=["numpy"], python_version="3.11"
    )
    deps.add_channel("conda-forge")
    deps.add_pip_package("scikit-learn==1.5.1")
    saved = deps.save(tmp_path / "deps.yml")
    again = CondaDependencies(saved)
    assert again.pip_packages == ["scikit-learn==1.5.1"]
    assert again.conda_packages == ["numpy", "pip"]
    assert again.get_python_version() == "3.11"
    assert again.conda_channels == ["conda-forge"]


def test_save_and_load_directory_roundtrip(ws, tmp_path):
    from azureml.core import Environment
    from azureml.core.conda_dependencies import CondaDependencies

    env = Environment("folder-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
    env.environment_variables = {"A": "1"}
    env.docker.shm_size = "1g"
    env.save_to_directory(tmp_path / "d")
    data = json.loads((tmp_path / "d" / "azureml_environment.json").read_text())
    assert data["python"]["condaDependenciesFile"] == "conda_dependencies.yml"
    loaded = Environment.load_from_directory(tmp_path / "d")
    assert loaded.python.conda_dependencies.pip_packages == ["six"]
    assert loaded.environment_variables == {"A": "1"} and loaded.docker.shm_size == "1g"
    with pytest.raises(SpecError, match="overwrite=True"):
        env.save_to_directory(tmp_path / "d")
    with pytest.raises(SpecError, match="mlmagic env scaffold"):
        Environment.load_from_directory(tmp_path / "missing")


def test_cli_scaffold_register_download(local_ws, tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlmagic.cli", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**__import__("os").environ, "MLMAGIC_WORKSPACE": str(local_ws.root)},
        )

    made = cli("env", "scaffold", "cli-env", "--directory", "scaffolded")
    assert made.returncode == 0, made.stderr
    (tmp_path / "scaffolded" / "conda_dependencies.yml").write_text(
        "dependencies:\n  - pip:\n    - six\n"
    )
    registered = cli("env", "register", "--directory", "scaffolded")
    assert registered.returncode == 0 and "cli-env:1 registered" in registered.stdout
    downloaded = cli("env", "download", "cli-env", "--directory", "out")
    assert downloaded.returncode == 0, downloaded.stderr
    assert "six" in (tmp_path / "out" / "conda_dependencies.yml").read_text()
    again = cli("env", "scaffold", "cli-env", "--directory", "scaffolded")
    assert again.returncode != 0 and "--overwrite" in again.stderr


SHIM_CHECK = """
import sys
from azureml.core import Run
print("REAL" in vars(sys.modules["azureml.core"]), Run.__module__)
"""


def test_shim_in_runs_gives_way_to_a_real_sdk(tmp_path):
    """Inside a run the shim comes first on the path, yet an installed SDK wins."""
    from mlmagic.azureml.shim import SHIM
    from mlmagic.targets.labels import HELPER

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "mlmagic_run.py").write_text(HELPER.read_text())
    (lib / "azureml").symlink_to(SHIM)
    site = tmp_path / "site"
    (site / "azureml" / "core").mkdir(parents=True)
    (site / "azureml" / "core" / "__init__.py").write_text("REAL = True\nclass Run: pass\n")

    def check(*path: Path) -> str:
        env = {"PYTHONPATH": ":".join(map(str, path)), "PATH": "/usr/bin:/bin"}
        done = subprocess.run(
            [sys.executable, "-c", SHIM_CHECK],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert check(lib) == "False azureml.core.run"
    assert check(lib, site) == "True azureml.core"


def test_offline_context_prints(capsys):
    from mlmagic.azureml.core import Run

    run = Run.get_context()
    run.log("accuracy", 0.5)
    assert run.offline and run.id.startswith("OfflineRun_")
    assert "accuracy=0.5" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="outside an mlmagic run"):
        Run.get_context(allow_offline=False)
    with pytest.raises(KeyError, match="no key vault here"):
        run.get_secret("MLMAGIC_TEST_NO_SUCH_SECRET")
    assert run.input_datasets == {} and run.experiment.name == "default"


def test_script_run_with_datastore_and_model(ws, tmp_path):
    from azureml.core import Environment, Experiment, ScriptRunConfig

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1\n")
    ds = ws.get_default_datastore()
    ds.upload(src_dir=str(tmp_path / "data"), target_path="digits", show_progress=False)
    config = ScriptRunConfig(
        source_directory=str(tmp_path / "src"),
        script="train.py",
        arguments=["--data-folder", ds.path("digits").as_mount(), "--lr", 0.01],
        environment=Environment("script-env"),
    )
    run = Experiment(ws, "unit-exp").submit(config, tags={"owner": "tests"})
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Completed"
    assert "online ['a.csv']" in run.mlmagic.logs()
    assert "experiment unit-exp" in run.mlmagic.logs() and run.number == 1
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert metrics["lr"] == 0.01 and metrics["note"] == "fine"
    assert metrics["accuracies"] == [0.5, 0.75]
    assert metrics["table.epoch"] == 1.0 and metrics["cols.x"] == [1.0, 2.0]
    assert run.get_tags() == {"owner": "tests", "stage": "unit"}
    assert run.get_file_names() == ["outputs/model.txt", "outputs/uploaded.txt"]
    run.download_file("outputs/model.txt", str(tmp_path / "model.txt"))
    assert (tmp_path / "model.txt").read_text() == "weights"
    run.download_files(prefix="outputs", output_directory=str(tmp_path / "all"))
    assert (tmp_path / "all" / "outputs" / "uploaded.txt").is_file()
    model = run.register_model(model_name="unit-model", model_path="outputs/model.txt")
    assert model.name == "unit-model" and model.version == 1
    assert run.get_environment().name == "script-env"
    assert run.properties["script"] == "train.py"


def test_failed_run_raises_unless_asked_not_to(ws, tmp_path):
    from azureml.core import Environment, Experiment, ScriptRunConfig

    (tmp_path / "fail.py").write_text("raise SystemExit('broken on purpose')\n")
    config = ScriptRunConfig(
        source_directory=str(tmp_path), script="fail.py", environment=Environment("fail-env")
    )
    run = Experiment(ws, "unit-fail").submit(config)
    with pytest.raises(RunError, match="failed"):
        run.wait_for_completion()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


def test_cancel_stops_the_run(ws, tmp_path):
    from azureml.core import Environment, Experiment, ScriptRunConfig

    (tmp_path / "slow.py").write_text(
        "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    )
    config = ScriptRunConfig(
        source_directory=str(tmp_path), script="slow.py", environment=Environment("slow-env")
    )
    run = Experiment(ws, "unit-cancel").submit(config)
    for _ in run.mlmagic.events():
        if "started" in run.mlmagic.logs():
            break
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"


def test_existing_conda_environment_without_conda(azureml, monkeypatch):
    from azureml.core import Environment

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SpecError, match="no conda command here"):
        Environment.from_existing_conda_environment("e", "base")


def test_compute_targets_and_node_limit(ws, tmp_path, capsys):
    from azureml.core import Environment, Experiment, ScriptRunConfig
    from azureml.core.compute import AmlCompute, ComputeTarget
    from azureml.core.compute_target import ComputeTargetException
    from azureml.core.runconfig import MpiConfiguration

    with pytest.raises(ComputeTargetException, match="ComputeTarget.create"):
        ComputeTarget(ws, "cpu-cluster")
    made = ComputeTarget.create(
        ws,
        "cpu-cluster",
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2),
    )
    made.wait_for_completion(show_output=False)
    assert ComputeTarget(ws, "cpu-cluster").max_nodes == 2
    (tmp_path / "t.py").write_text("print(1)\n")
    config = ScriptRunConfig(
        source_directory=str(tmp_path),
        script="t.py",
        compute_target=made,
        environment=Environment("node-env"),
        distributed_job_config=MpiConfiguration(node_count=3),
    )
    with pytest.raises(RunError, match="max_nodes=2"):
        Experiment(ws, "unit-nodes").submit(config)
    # A cluster made in Azure's portal, never created here: the engine runs it, saying so.
    portal = ScriptRunConfig(
        source_directory=str(tmp_path),
        script="t.py",
        compute_target="portal-cluster",
        environment=Environment("node-env"),
    )
    run = Experiment(ws, "unit-nodes").submit(portal)
    assert "'portal-cluster' is not recorded in this workspace" in capsys.readouterr().out
    assert run.wait_for_completion()["status"] == "Completed"


def test_estimator_becomes_script_run_config(ws, tmp_path):
    from azureml.core import Environment
    from azureml.train.dnn import Mpi, ParameterServer, TensorFlow
    from azureml.train.estimator import Estimator

    est = TensorFlow(
        source_directory=str(tmp_path),
        entry_script="train.py",
        script_params={"--batch-size": 50, "--verbose": None},
        framework_version="2.15",
        pip_packages=["six"],
        node_count=2,
        distributed_training=Mpi(process_count_per_node=1),
    )
    config = est.script_run_config()
    assert config.arguments == ["--batch-size", 50, "--verbose"]
    assert config.distributed_job_config.framework == "mpi"
    assert config.distributed_job_config.nodes == 2
    assert est.environment.python.conda_dependencies.pip_packages == ["tensorflow==2.15.*", "six"]
    assert est.environment.to_mlmagic().spec.gpu is False
    gpu = TensorFlow(source_directory=str(tmp_path), entry_script="train.py", use_gpu=True)
    assert gpu.environment.to_mlmagic().spec.gpu is True
    ps = Estimator(
        source_directory=str(tmp_path),
        entry_script="train.py",
        environment_definition=Environment("given"),
        distributed_training=ParameterServer(worker_count=2, parameter_server_count=1),
    )
    layout = ps.script_run_config().distributed_job_config
    assert (layout.workers, layout.parameter_servers) == (2, 1)
    with pytest.raises(RunError, match="not both"):
        Estimator(
            source_directory=".",
            entry_script="t.py",
            environment_definition=Environment("x"),
            pip_packages=["six"],
        )
    with pytest.raises(RunError, match="needs distributed_training"):
        Estimator(source_directory=".", entry_script="t.py", node_count=2)


def test_distributed_configs_as_the_documents_write_them(azureml, tmp_path):
    from azureml.core.runconfig import MpiConfiguration, TensorflowConfiguration
    from azureml.train.dnn import TensorFlow

    import mlmagic

    distributed_training = TensorflowConfiguration()
    distributed_training.worker_count = 2
    est = TensorFlow(
        source_directory=str(tmp_path),
        entry_script="script.py",
        node_count=2,
        process_count_per_node=1,
        distributed_training=distributed_training,
        pip_packages=["six"],
    )
    layout = est.script_run_config().distributed_job_config
    assert (layout.workers, layout.parameter_servers, layout.nodes) == (2, 1, 3)
    mpi = TensorFlow(
        source_directory=str(tmp_path),
        entry_script="script.py",
        node_count=2,
        distributed_training=MpiConfiguration(),
    ).script_run_config()
    assert (mpi.distributed_job_config.framework, mpi.distributed_job_config.nodes) == ("mpi", 2)
    ours = TensorFlow(
        source_directory=str(tmp_path),
        entry_script="script.py",
        node_count=2,
        distributed_training=mlmagic.MpiConfiguration(),
    ).script_run_config()
    assert ours.distributed_job_config.nodes == 2
    with pytest.raises(RunError, match="does not split evenly"):
        from azureml.core.runconfig import PyTorchConfiguration, as_distribution

        as_distribution(PyTorchConfiguration(process_count=3, node_count=2))


def test_datastore_bad_paths(ws, tmp_path):
    ds = ws.get_default_datastore()
    with pytest.raises(MlmagicError, match="leaves the datastore"):
        ds.upload_files([str(tmp_path)], target_path="../out")
    with pytest.raises(NotFoundError, match="upload to it first"):
        ds.path("nothing-here").run_argument("docker")


def test_workspace_from_config_reads_name(tmp_path, monkeypatch, local_ws):
    from mlmagic.azureml.core import Workspace

    (tmp_path / "config.json").write_text(
        json.dumps({"subscription_id": "s", "resource_group": "g", "workspace_name": "wsname"})
    )
    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    assert ws.name == "wsname" and ws.subscription_id == "s"
    assert Path(ws.get_default_datastore().root).is_dir()
