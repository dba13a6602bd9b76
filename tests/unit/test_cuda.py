"""The CUDA/framework table holds together, and GPU environments get the base its rules say.

The rendered Dockerfiles of each rule are golden files (``test_build.py``, ``gpu-*``);
these tests pin the choices and the refusals one by one.
"""

from __future__ import annotations

import dataclasses

import pytest

from mlmagic.build import cuda_table
from mlmagic.build.context import cache_key, resolve_base
from mlmagic.build.cuda import choose_gpu_base, cuda_of_image, cuda_of_tag
from mlmagic.build.cuda_table import CUDA_IMAGES, TENSORFLOW, TORCH, CudaImage, problems
from mlmagic.config import MLMagic
from mlmagic.exceptions import SpecError
from mlmagic.spec import parse

DEFAULT = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"


def _config() -> MLMagic:
    config = MLMagic()
    config.cpu_base_image = "python:{python}-slim"
    config.gpu_base_image = DEFAULT
    config.default_python = "3.11"
    return config


def test_the_shipped_table_holds_together() -> None:
    assert problems() == []


def test_the_check_finds_a_cuda_without_an_image_a_gap_and_disorder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_12_4 = tuple(i for i in CUDA_IMAGES if i.cuda != "12.4")
    monkeypatch.setattr(cuda_table, "CUDA_IMAGES", without_12_4)
    assert "torch 2.4 names CUDA 12.4, which has no image" in problems()
    monkeypatch.setattr(cuda_table, "CUDA_IMAGES", CUDA_IMAGES)
    monkeypatch.setattr(cuda_table, "TORCH", tuple(t for t in TORCH if t.torch != "2.5"))
    assert problems() == ["TORCH jumps from 2.4 to 2.6"]
    monkeypatch.setattr(cuda_table, "TORCH", TORCH)
    monkeypatch.setattr(cuda_table, "TENSORFLOW", (TENSORFLOW[1], TENSORFLOW[0]))
    assert "TENSORFLOW is not sorted oldest first without duplicates" in problems()


def test_the_check_refuses_an_old_tensorflow_whose_cudnn_has_no_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = tuple(dataclasses.replace(i, cudnn=()) if i.cuda == "11.2" else i for i in CUDA_IMAGES)
    monkeypatch.setattr(cuda_table, "CUDA_IMAGES", images)
    assert "tensorflow 2.5: no CUDA 11.2 image has cuDNN 8.1" in problems()


def test_image_tags_follow_nvidias_naming() -> None:
    by_cuda = {i.cuda: i for i in CUDA_IMAGES}
    assert by_cuda["11.8"].cudnn_runtime("8") == "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    assert by_cuda["12.3"].cudnn_runtime("9") == "nvidia/cuda:12.3.2-cudnn9-runtime-ubuntu22.04"
    assert by_cuda["12.6"].cudnn_runtime("9") == "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04"
    assert by_cuda["12.6"].cudnn_runtime("8") is None
    assert CudaImage("12.1", "12.1.1", "22.04", ()).runtime == (
        "nvidia/cuda:12.1.1-runtime-ubuntu22.04"
    )


def test_cuda_versions_are_read_from_tags_and_images() -> None:
    assert [cuda_of_tag(t) for t in ("cu118", "cu121", "cu130", "cu92")] == [
        "11.8",
        "12.1",
        "13.0",
        "9.2",
    ]
    assert cuda_of_image("nvidia/cuda:12.2.2-cudnn8-runtime-ubuntu22.04") == "12.2"
    assert cuda_of_image("registry.example.com/nvidia/cuda:11.8.0-base") == "11.8"
    assert cuda_of_image("pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime") is None


_CU118 = "nvidia/cuda:11.8.0-runtime-ubuntu22.04"
_CU121 = "nvidia/cuda:12.1.1-runtime-ubuntu22.04"
_CU126 = "nvidia/cuda:12.6.3-runtime-ubuntu22.04"
_TF_11_8 = "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
_TF_11_2 = "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04"


@pytest.mark.parametrize(
    ("pip", "indexes", "image", "cuda", "in_image"),
    [
        (["torch==2.3.1+cu118"], [], _CU118, "11.8", True),
        (["torch"], ["https://download.pytorch.org/whl/cu126/"], _CU126, "12.6", True),
        (["torch==2.5.1"], [], None, "12.4", False),
        (["torch>=2"], [], None, None, False),
        (["torch==2.5.1+cpu"], [], None, None, False),
        (["torch"], ["https://download.pytorch.org/whl/rocm6.1"], None, None, False),
        (["tensorflow==2.12.0"], [], _TF_11_8, "11.8", True),
        (["tensorflow-gpu==2.10.1"], [], _TF_11_2, "11.2", True),
        (["tensorflow[and-cuda]==2.18.0"], [], None, "12.5", False),
        (["tensorflow"], [], DEFAULT, "12.4", True),
        (["tensorflow==2.99.0"], [], DEFAULT, "12.4", True),
        (["scikit-learn"], [], DEFAULT, "12.4", True),
        # torch's wheels bring their CUDA: TensorFlow's image, a driver for the newer.
        (["tensorflow==2.14.0", "torch==2.5.1"], [], _TF_11_8, "12.4", True),
        # TensorFlow's wheels bring theirs: torch's image, a driver for the newer.
        (["torch==2.1.0+cu121", "tensorflow[and-cuda]==2.15.0"], [], _CU121, "12.2", True),
    ],
)
def test_the_pins_choose_the_base(
    pip: list[str], indexes: list[str], image: str | None, cuda: str | None, in_image: bool
) -> None:
    choice = choose_gpu_base(pip, indexes, cuda=None, default_image=DEFAULT)
    assert (choice.image, choice.cuda, choice.cuda_in_image) == (image, cuda, in_image)
    assert choice.reason


def test_a_torch_build_without_cuda_is_said_not_refused() -> None:
    choice = choose_gpu_base(["torch==2.5.1+cpu"], [], cuda=None, default_image=DEFAULT)
    assert choice.reason == (
        "torch==2.5.1+cpu is a cpu build of torch: it will not use an NVIDIA GPU (pin a "
        "+cuXYZ build, or use a PyTorch index for CUDA)"
    )


def test_a_tensorflow_the_table_lacks_says_how_to_choose() -> None:
    choice = choose_gpu_base(["tensorflow==2.99.0"], [], cuda=None, default_image=DEFAULT)
    assert choice.reason.endswith(
        "tensorflow==2.99.0 is not in mlmagic's table (2.4 to 2.21): set cuda: X.Y for its CUDA"
    )


def test_asking_for_a_cuda_wins_over_the_pins_and_takes_cudnn_for_tensorflow() -> None:
    choice = choose_gpu_base(["tensorflow==2.15.0"], [], cuda="12.4", default_image=DEFAULT)
    assert choice.image == "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
    assert choice.reason == "CUDA 12.4 was asked for with cuda:/--cuda"
    plain = choose_gpu_base(["torch==2.3.1+cu118"], [], cuda="12.1", default_image=DEFAULT)
    assert plain.image == "nvidia/cuda:12.1.1-runtime-ubuntu22.04"


def test_a_conflict_is_refused_in_one_line_naming_both() -> None:
    with pytest.raises(SpecError) as caught:
        choose_gpu_base(
            ["tensorflow==2.15.0", "torch==2.3.1+cu118"], [], cuda=None, default_image=DEFAULT
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "tensorflow==2.15.0 needs CUDA 12.2" in message
    assert "torch==2.3.1+cu118 is built for CUDA 11.8" in message
    assert "cuda: X.Y" in message


def test_a_tensorflow_no_image_can_serve_is_refused_with_the_way_out() -> None:
    with pytest.raises(SpecError, match=r"tensorflow\[and-cuda\]==2.16.1"):
        choose_gpu_base(["tensorflow==2.16.1"], [], cuda=None, default_image=DEFAULT)


def test_an_unknown_cuda_names_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"CUDA 12.7 has no nvidia/cuda image .* 12.6, 12.8"):
        choose_gpu_base([], [], cuda="12.7", default_image=DEFAULT)


def test_cuda_in_yaml_and_as_an_option_makes_a_gpu_environment() -> None:
    spec = parse("pip: [six]\ncuda: '11.8'\n")
    base = resolve_base(spec, _config())
    assert base.image == "nvidia/cuda:11.8.0-runtime-ubuntu22.04" and base.install_python
    assert base.cuda == "11.8" and base.reason and "cuda:" in base.reason
    # Unquoted, YAML would read 12.10 as 12.1: the text is taken as written.
    assert parse("pip: [six]\ncuda: 12.10\n").cuda == "12.10"
    with pytest.raises(SpecError, match="form X.Y"):
        parse("pip: [six]\ncuda: twelve\n")
    option = parse("six\n").with_options(cuda="12.1")
    assert resolve_base(option, _config()).image == "nvidia/cuda:12.1.1-runtime-ubuntu22.04"


def test_an_explicit_base_image_wins_and_says_so() -> None:
    spec = parse("pip: [torch==2.3.1+cu118]\nbase_image: pytorch/pytorch:2.3.1\ngpu: true\n")
    base = resolve_base(spec, _config())
    assert base.image == "pytorch/pytorch:2.3.1"
    assert base.reason == "pytorch/pytorch:2.3.1: named as the base image"
    assert base.cuda is None


def test_the_base_stays_in_the_content_hash_and_old_specs_keep_their_names() -> None:
    config = _config()
    a = parse("pip: [torch==2.3.1+cu118]\ngpu: true\n")
    b = parse("pip: [torch==2.3.1+cu121]\ngpu: true\n")
    assert cache_key(a, resolve_base(a, config)) != cache_key(b, resolve_base(b, config))
    # A spec without cuda normalises as it did before the field existed.
    assert "cuda" not in parse("six\n").normalised()
    assert parse("pip: [six]\ncuda: '12.1'\n").normalised()["cuda"] == "12.1"


@pytest.fixture
def magic_ws(tmp_path, monkeypatch: pytest.MonkeyPatch):
    from IPython.core.interactiveshell import InteractiveShell

    from mlmagic.workspace import Workspace

    root = tmp_path / ".mlmagic"
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(root))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    ws = Workspace(root, config=_config())
    Workspace._current[root] = ws
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlmagic")
    yield shell
    Workspace._current.pop(root, None)


def test_the_magic_takes_cuda_and_envs_shows_the_base_and_why(magic_ws, capsys) -> None:
    env = magic_ws.run_cell_magic(
        "environment", "gpu-env --cuda 12.1 --no-build", "torch==2.3.1+cu118\n"
    )
    assert env.spec.cuda == "12.1" and env.version == 1
    capsys.readouterr()
    magic_ws.run_line_magic("envs", "gpu-env")
    out = capsys.readouterr().out
    assert (
        "base: nvidia/cuda:12.1.1-runtime-ubuntu22.04: CUDA 12.1 was asked for with "
        "cuda:/--cuda\n" in out
    )
    assert "\n# mlmagic base: nvidia/cuda:12.1.1-runtime-ubuntu22.04: CUDA 12.1" in out


def test_the_magic_refuses_a_conflict_in_one_line(magic_ws) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError) as caught:
        magic_ws.run_cell_magic(
            "environment", "both --gpu --no-build", "tensorflow==2.15.0\ntorch==2.3.1+cu118\n"
        )
    assert "\n" not in str(caught.value)
    assert "tensorflow==2.15.0 needs CUDA 12.2 but torch==2.3.1+cu118" in str(caught.value)


def test_the_cli_takes_cuda_and_shows_the_base(tmp_path, monkeypatch, capsys) -> None:
    from mlmagic.cli import main
    from mlmagic.workspace import Workspace

    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(tmp_path / ".mlmagic"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setattr(Workspace, "_current", {})
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tensorflow==2.15.0\n")
    assert main(["env", "build", str(requirements), "--name", "tf", "--gpu", "--no-build"]) == 0
    assert main(["env", "build", str(requirements), "--name", "tf11", "--cuda", "11.8",
                 "--no-build"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["env", "show", "tf"]) == 0
    assert (
        "base: nvidia/cuda:12.2.2-cudnn8-runtime-ubuntu22.04: tensorflow==2.15.0 was built "
        "for CUDA 12.2 with cuDNN 8.9" in capsys.readouterr().out
    )
    assert main(["env", "show", "tf11"]) == 0
    assert "base: nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04" in capsys.readouterr().out
