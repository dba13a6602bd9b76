"""The facts GPU environments are chosen from: which CUDA each framework build wants,
and which ``nvidia/cuda`` image carries each CUDA.

Data only; the rules that read it are in :mod:`mlmagic.build.cuda`, and
:func:`problems` checks that the table holds together (a unit test runs it).

Sources (gathered 2026-12; add a row when a framework releases, newest last):

- torch: https://pytorch.org/get-started/previous-versions/ (the ``--index-url
  https://download.pytorch.org/whl/cuXYZ`` lines of each release) and the ``nvidia-*-cu1X``
  wheels that torch's PyPI release depends on (the CUDA of ``pip install torch``).
- TensorFlow: https://www.tensorflow.org/install/source#gpu, "Tested build
  configurations", Linux GPU table (the ``cuDNN`` and ``CUDA`` columns).
- nvidia/cuda: https://hub.docker.com/r/nvidia/cuda/tags and
  https://gitlab.com/nvidia/container-images/cuda/-/blob/master/doc/supported-tags.md
  (the newest patch release of each CUDA X.Y; cuDNN tags are ``-cudnn8-`` up to 12.2,
  ``-cudnn9-`` on 12.3 and plain ``-cudnn-`` (cuDNN 9) from 12.4 on).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

__all__ = [
    "CUDA_IMAGES",
    "CUDA_REPOSITORY",
    "TENSORFLOW",
    "TENSORFLOW_WHEELS_FROM",
    "TORCH",
    "TORCH_INDEX",
    "CudaImage",
    "TensorflowBuild",
    "TorchBuild",
    "problems",
    "version_key",
]

#: The image repository every CUDA base comes from.
CUDA_REPOSITORY = "nvidia/cuda"
#: The first TensorFlow whose ``tensorflow[and-cuda]`` brings CUDA and cuDNN as wheels.
TENSORFLOW_WHEELS_FROM = "2.14"
#: The extra index of torch's ``+cuXYZ`` builds; ``{tag}`` is ``cu121`` and the like.
TORCH_INDEX = "https://download.pytorch.org/whl/{tag}"


@dataclass(frozen=True)
class CudaImage:
    """The ``nvidia/cuda`` images of one CUDA ``X.Y``.

    Attributes
    ----------
    cuda
        ``"X.Y"``.
    release
        The newest patch release with images, ``"X.Y.Z"``.
    ubuntu
        The Ubuntu release of the images (the newest that has every variant).
    cudnn
        The cuDNN major versions a ``cudnn-runtime`` image exists for, each with the
        word its tag carries (``cudnn8``, or ``cudnn`` for cuDNN 9 from CUDA 12.4 on).
    """

    cuda: str
    release: str
    ubuntu: str
    cudnn: tuple[tuple[str, str], ...]

    @property
    def runtime(self) -> str:
        """The runtime image (CUDA's libraries, no cuDNN)."""
        return f"{CUDA_REPOSITORY}:{self.release}-runtime-ubuntu{self.ubuntu}"

    def cudnn_runtime(self, cudnn_major: str) -> str | None:
        """The runtime image with cuDNN ``cudnn_major``, or ``None`` when there is none."""
        word = dict(self.cudnn).get(cudnn_major)
        if word is None:
            return None
        return f"{CUDA_REPOSITORY}:{self.release}-{word}-runtime-ubuntu{self.ubuntu}"


@dataclass(frozen=True)
class TorchBuild:
    """The CUDA builds of one torch release ``X.Y``.

    Attributes
    ----------
    torch
        ``"X.Y"`` (every patch release of it has the same builds).
    pypi
        The CUDA of ``pip install torch`` from PyPI (its CUDA libraries come as wheels).
    indexes
        The CUDA versions with a ``+cuXYZ`` build on the PyTorch index, oldest first.
    """

    torch: str
    pypi: str
    indexes: tuple[str, ...]


@dataclass(frozen=True)
class TensorflowBuild:
    """The tested GPU configuration of one TensorFlow release ``X.Y``."""

    tensorflow: str
    cuda: str
    cudnn: str


_CUDNN8 = (("8", "cudnn8"),)

CUDA_IMAGES: tuple[CudaImage, ...] = (
    CudaImage("11.0", "11.0.3", "20.04", _CUDNN8),
    CudaImage("11.1", "11.1.1", "20.04", _CUDNN8),
    CudaImage("11.2", "11.2.2", "20.04", _CUDNN8),
    CudaImage("11.3", "11.3.1", "20.04", _CUDNN8),
    CudaImage("11.4", "11.4.3", "20.04", _CUDNN8),
    CudaImage("11.5", "11.5.2", "20.04", _CUDNN8),
    CudaImage("11.6", "11.6.2", "20.04", _CUDNN8),
    CudaImage("11.7", "11.7.1", "22.04", _CUDNN8),
    CudaImage("11.8", "11.8.0", "22.04", _CUDNN8),
    CudaImage("12.0", "12.0.1", "22.04", _CUDNN8),
    CudaImage("12.1", "12.1.1", "22.04", _CUDNN8),
    CudaImage("12.2", "12.2.2", "22.04", _CUDNN8),
    CudaImage("12.3", "12.3.2", "22.04", (("9", "cudnn9"),)),
    CudaImage("12.4", "12.4.1", "22.04", (("9", "cudnn"),)),
    CudaImage("12.5", "12.5.1", "22.04", (("9", "cudnn"),)),
    CudaImage("12.6", "12.6.3", "22.04", (("9", "cudnn"),)),
    CudaImage("12.8", "12.8.1", "22.04", (("9", "cudnn"),)),
    CudaImage("12.9", "12.9.1", "22.04", (("9", "cudnn"),)),
    CudaImage("13.0", "13.0.2", "22.04", (("9", "cudnn"),)),
)

TORCH: tuple[TorchBuild, ...] = (
    TorchBuild("2.0", pypi="11.7", indexes=("11.7", "11.8")),
    TorchBuild("2.1", pypi="12.1", indexes=("11.8", "12.1")),
    TorchBuild("2.2", pypi="12.1", indexes=("11.8", "12.1")),
    TorchBuild("2.3", pypi="12.1", indexes=("11.8", "12.1")),
    TorchBuild("2.4", pypi="12.1", indexes=("11.8", "12.1", "12.4")),
    TorchBuild("2.5", pypi="12.4", indexes=("11.8", "12.1", "12.4")),
    TorchBuild("2.6", pypi="12.4", indexes=("11.8", "12.4", "12.6")),
    TorchBuild("2.7", pypi="12.6", indexes=("11.8", "12.6", "12.8")),
    TorchBuild("2.8", pypi="12.8", indexes=("12.6", "12.8", "12.9")),
    TorchBuild("2.9", pypi="12.8", indexes=("12.6", "12.8", "13.0")),
)

TENSORFLOW: tuple[TensorflowBuild, ...] = (
    TensorflowBuild("2.4", cuda="11.0", cudnn="8.0"),
    TensorflowBuild("2.5", cuda="11.2", cudnn="8.1"),
    TensorflowBuild("2.6", cuda="11.2", cudnn="8.1"),
    TensorflowBuild("2.7", cuda="11.2", cudnn="8.1"),
    TensorflowBuild("2.8", cuda="11.2", cudnn="8.1"),
    TensorflowBuild("2.9", cuda="11.2", cudnn="8.1"),
    TensorflowBuild("2.10", cuda="11.2", cudnn="8.1"),
    TensorflowBuild("2.11", cuda="11.2", cudnn="8.1"),
    TensorflowBuild("2.12", cuda="11.8", cudnn="8.6"),
    TensorflowBuild("2.13", cuda="11.8", cudnn="8.6"),
    TensorflowBuild("2.14", cuda="11.8", cudnn="8.7"),
    TensorflowBuild("2.15", cuda="12.2", cudnn="8.9"),
    # No nvidia/cuda image pairs CUDA 12.3 with cuDNN 8: these two need their libraries
    # as wheels (tensorflow[and-cuda]) or an image chosen with `cuda:`.
    TensorflowBuild("2.16", cuda="12.3", cudnn="8.9"),
    TensorflowBuild("2.17", cuda="12.3", cudnn="8.9"),
    TensorflowBuild("2.18", cuda="12.5", cudnn="9.3"),
    TensorflowBuild("2.19", cuda="12.5", cudnn="9.3"),
    TensorflowBuild("2.20", cuda="12.5", cudnn="9.3"),
    TensorflowBuild("2.21", cuda="12.5", cudnn="9.3"),
)


def version_key(version: str) -> tuple[int, ...]:
    """``"12.10"`` → ``(12, 10)``: versions compare as numbers, not as text."""
    return tuple(int(part) for part in version.split("."))


def _next_minor(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"


def problems() -> list[str]:
    """What is wrong with the table, one line each (empty when it holds together).

    Every CUDA a framework names has an image; each list is sorted and without
    duplicates; framework releases follow one another without a gap (so a version
    between two rows is never taken for "not in the table"); each torch row's PyPI
    CUDA is one of its builds; a TensorFlow row has a cuDNN image unless its CUDA and
    cuDNN also come as wheels (from :data:`TENSORFLOW_WHEELS_FROM` on).
    """
    found: list[str] = []
    images = {image.cuda: image for image in CUDA_IMAGES}
    columns: list[tuple[str, list[str], bool]] = [
        ("CUDA_IMAGES", [i.cuda for i in CUDA_IMAGES], False),
        ("TORCH", [t.torch for t in TORCH], True),
        ("TENSORFLOW", [t.tensorflow for t in TENSORFLOW], True),
    ]
    for name, versions, contiguous in columns:
        keys = [version_key(v) for v in versions]
        if keys != sorted(set(keys)):
            found.append(f"{name} is not sorted oldest first without duplicates")
        if contiguous:
            for older, newer in pairwise(versions):
                if newer != _next_minor(older):
                    found.append(f"{name} jumps from {older} to {newer}")
    for image in CUDA_IMAGES:
        if not image.release.startswith(f"{image.cuda}."):
            found.append(f"CUDA {image.cuda}'s release {image.release} is of another CUDA")
    for build in TORCH:
        for cuda in (build.pypi, *build.indexes):
            if cuda not in images:
                found.append(f"torch {build.torch} names CUDA {cuda}, which has no image")
        if build.pypi not in build.indexes:
            found.append(f"torch {build.torch}: PyPI's CUDA {build.pypi} is not among its builds")
        if [version_key(c) for c in build.indexes] != sorted(map(version_key, build.indexes)):
            found.append(f"torch {build.torch}: its CUDA builds are not sorted")
    for tf in TENSORFLOW:
        tf_image = images.get(tf.cuda)
        if tf_image is None:
            found.append(f"tensorflow {tf.tensorflow} names CUDA {tf.cuda}, which has no image")
        elif tf_image.cudnn_runtime(tf.cudnn.split(".")[0]) is None and version_key(
            tf.tensorflow
        ) < version_key(TENSORFLOW_WHEELS_FROM):
            found.append(
                f"tensorflow {tf.tensorflow}: no CUDA {tf.cuda} image has cuDNN {tf.cudnn}"
            )
    return found
