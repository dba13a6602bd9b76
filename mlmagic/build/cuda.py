"""Which base a GPU environment starts from, and why: the rules over :mod:`.cuda_table`.

The rules, first match wins (like Cog's, which picks the base from the pins):

1. ``cuda: X.Y`` (``--cuda X.Y``) names the CUDA: its ``nvidia/cuda`` runtime image, with
   cuDNN when TensorFlow is in the environment. (An explicit base image wins even over
   this; :func:`mlmagic.build.context.resolve_base` sees to that.)
2. A pinned TensorFlow takes the CUDA and cuDNN it was tested with (its
   ``cudnn-runtime`` image); ``tensorflow[and-cuda]`` brings both as wheels, so it needs
   only a driver.
3. torch with a ``+cuXYZ`` version, or from a PyTorch index (``.../whl/cuXYZ``), takes
   that CUDA's runtime image.
4. torch from PyPI brings its CUDA libraries as wheels: a plain Python base (the CPU
   image) and a driver are enough.
5. Otherwise the configured GPU base image.

TensorFlow and torch that want different CUDA images are refused in one line naming
both. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mlmagic.build.cuda_table import (
    CUDA_IMAGES,
    CUDA_REPOSITORY,
    TENSORFLOW,
    TENSORFLOW_WHEELS_FROM,
    TORCH,
    CudaImage,
    version_key,
)
from mlmagic.exceptions import SpecError

__all__ = ["GpuChoice", "choose_gpu_base", "cuda_image", "cuda_of_image", "cuda_of_tag"]

_TORCH_TAG = re.compile(r"cu(\d+)(\d)")
_TORCH_INDEX = re.compile(r"download\.pytorch\.org/whl/(?:nightly/)?(cu\d+)/?$")
_OTHER_INDEX = re.compile(r"download\.pytorch\.org/whl/(?:nightly/)?(cpu|rocm[\d.]+)/?$")
_CUDA_IMAGE_TAG = re.compile(r"(?:^|[\s/])nvidia/cuda:(\d+)\.(\d+)")
_TENSORFLOW_NAMES = frozenset({"tensorflow", "tensorflow-gpu"})


@dataclass(frozen=True)
class GpuChoice:
    """The base of a GPU environment and the reason for it.

    Attributes
    ----------
    image
        The image to start from; ``None`` means the plain (CPU) Python base, for
        frameworks that bring their CUDA libraries as wheels.
    cuda
        The CUDA ``X.Y`` the host's driver must support, when known.
    cuda_in_image
        The CUDA libraries are the image's (a driver for exactly that CUDA or newer is
        needed); ``False`` when they come as wheels (any driver of that major).
    reason
        One line, for the Dockerfile's header, ``%envs NAME`` and the build log.
    """

    image: str | None
    cuda: str | None
    cuda_in_image: bool
    reason: str


def cuda_of_tag(tag: str) -> str:
    """``"cu121"`` → ``"12.1"``, ``"cu130"`` → ``"13.0"`` (the last digit is the minor)."""
    match = _TORCH_TAG.fullmatch(tag)
    if match is None:
        raise ValueError(f"{tag!r} is not a CUDA build tag such as cu121")
    return f"{int(match.group(1))}.{match.group(2)}"


def cuda_of_image(image: str) -> str | None:
    """The CUDA ``X.Y`` of an ``nvidia/cuda:X.Y.Z-...`` image; ``None`` for other images."""
    match = _CUDA_IMAGE_TAG.search(image)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def cuda_image(cuda: str) -> CudaImage:
    """The images of CUDA ``X.Y``; :class:`SpecError` for a CUDA the table does not know."""
    for image in CUDA_IMAGES:
        if image.cuda == cuda:
            return image
    known = ", ".join(i.cuda for i in CUDA_IMAGES)
    raise SpecError(
        f"CUDA {cuda} has no {CUDA_REPOSITORY} image that mlmagic knows of (it knows "
        f"{known}): choose one of those with cuda:, or name the image with --base."
    )


def choose_gpu_base(
    pip: Iterable[str],
    indexes: Iterable[str],
    *,
    cuda: str | None,
    default_image: str,
) -> GpuChoice:
    """The base of a GPU environment with requirements ``pip`` and package ``indexes``.

    Parameters
    ----------
    pip
        The environment's requirement strings (PEP 508).
    indexes
        Its ``--index-url`` and ``--extra-index-url`` values.
    cuda
        The CUDA ``X.Y`` asked for with ``cuda:`` / ``--cuda``, or ``None``.
    default_image
        The configured GPU base image (rule 5).

    Raises
    ------
    SpecError
        TensorFlow and torch want different CUDA images; a CUDA the table lacks was asked
        for; a TensorFlow whose CUDA and cuDNN no image pairs.
    """
    requirements = _requirements(pip)
    tensorflow = next((r for r in requirements if r.name in _TENSORFLOW_NAMES), None)
    torch = next((r for r in requirements if r.name == "torch"), None)
    if cuda is not None:
        image = cuda_image(cuda)
        chosen = image.runtime
        if tensorflow is not None and image.cudnn:
            chosen = image.cudnn_runtime(image.cudnn[-1][0]) or chosen
        return GpuChoice(chosen, cuda, True, f"CUDA {cuda} was asked for with cuda:/--cuda")
    from_tf = _tensorflow_choice(tensorflow) if tensorflow is not None else None
    from_torch = _torch_choice(torch, indexes) if torch is not None else None
    if from_tf is not None and from_torch is not None:
        return _both(from_tf, from_torch, str(tensorflow), str(torch))
    if from_tf is not None:
        return from_tf
    if from_torch is not None:
        return from_torch
    why = "the configured GPU base image (MLMagic.gpu_base_image)"
    if tensorflow is not None and _pinned(tensorflow) is None:
        why += f"; pin tensorflow (e.g. tensorflow=={TENSORFLOW[-1].tensorflow}.0) to get its CUDA"
    elif tensorflow is not None:
        known = f"{TENSORFLOW[0].tensorflow} to {TENSORFLOW[-1].tensorflow}"
        why += f"; {tensorflow} is not in mlmagic's table ({known}): set cuda: X.Y for its CUDA"
    return GpuChoice(default_image, cuda_of_image(default_image), True, why)


def _requirements(pip: Iterable[str]) -> list[Requirement]:
    found = []
    for text in pip:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # a URL or path requirement: not a framework pin we can read
        requirement.name = canonicalize_name(requirement.name)
        found.append(requirement)
    return found


def _pinned(requirement: Requirement) -> str | None:
    """The version a ``==`` / ``===`` / ``~=`` specifier pins (with its local label)."""
    for spec in requirement.specifier:
        if spec.operator in ("==", "===", "~="):
            return spec.version.rstrip(".*")
    return None


def _minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def _tensorflow_choice(requirement: Requirement) -> GpuChoice | None:
    pinned = _pinned(requirement)
    if pinned is None:
        return None
    minor = _minor(pinned)
    build = next((b for b in TENSORFLOW if b.tensorflow == minor), None)
    if build is None:
        return None
    wheels = "and-cuda" in requirement.extras
    if wheels and version_key(minor) >= version_key(TENSORFLOW_WHEELS_FROM):
        return GpuChoice(
            None,
            build.cuda,
            False,
            f"{requirement} brings CUDA {build.cuda} and cuDNN {build.cudnn} as wheels: "
            "a plain Python base and a driver are enough",
        )
    image = cuda_image(build.cuda).cudnn_runtime(build.cudnn.split(".")[0])
    if image is None:
        raise SpecError(
            f"{requirement} was built for CUDA {build.cuda} with cuDNN {build.cudnn}, and no "
            f"{CUDA_REPOSITORY} image pairs them: ask for tensorflow[and-cuda]=={pinned} (they "
            "come as wheels), or choose the CUDA with cuda: X.Y or the image with --base."
        )
    return GpuChoice(
        image,
        build.cuda,
        True,
        f"{requirement} was built for CUDA {build.cuda} with cuDNN {build.cudnn}",
    )


def _torch_choice(requirement: Requirement, indexes: Iterable[str]) -> GpuChoice:
    pinned = _pinned(requirement) or ""
    local = pinned.partition("+")[2]
    other = local or next((m.group(1) for i in indexes if (m := _OTHER_INDEX.search(i))), "")
    if other and not _TORCH_TAG.fullmatch(other):
        # +cpu, +rocm6.1: a build that cannot use an NVIDIA GPU. Said, not refused: the
        # environment still builds, and the reason shows where the user looks.
        return GpuChoice(
            None,
            None,
            False,
            f"{requirement} is a {other} build of torch: it will not use an NVIDIA GPU "
            "(pin a +cuXYZ build, or use a PyTorch index for CUDA)",
        )
    if _TORCH_TAG.fullmatch(local):
        cuda = cuda_of_tag(local)
        return GpuChoice(
            cuda_image(cuda).runtime, cuda, True, f"{requirement} is built for CUDA {cuda}"
        )
    for index in indexes:
        match = _TORCH_INDEX.search(index.rstrip("/") + "/")
        if match:
            cuda = cuda_of_tag(match.group(1))
            return GpuChoice(
                cuda_image(cuda).runtime,
                cuda,
                True,
                f"{requirement} comes from the PyTorch index for CUDA {cuda} ({index})",
            )
    build = next((b for b in TORCH if pinned and b.torch == _minor(pinned)), None)
    if build is None:
        return GpuChoice(
            None,
            None,
            False,
            f"{requirement} from PyPI brings its CUDA libraries as wheels: a plain Python "
            "base and a recent driver are enough",
        )
    return GpuChoice(
        None,
        build.pypi,
        False,
        f"{requirement} from PyPI brings CUDA {build.pypi} as wheels: a plain Python base "
        "and a driver are enough",
    )


def _both(tf: GpuChoice, torch: GpuChoice, tf_pin: str, torch_pin: str) -> GpuChoice:
    """TensorFlow and torch in one environment: one base must serve both.

    Libraries that come as wheels need nothing of the image, so only two images can
    disagree; the driver must then support the newer of the two CUDA versions.
    """
    if tf.cuda_in_image and torch.cuda_in_image and tf.cuda != torch.cuda:
        raise SpecError(
            f"{tf_pin} needs CUDA {tf.cuda} but {torch_pin} is built for CUDA {torch.cuda}: "
            "pin versions that agree, or choose one CUDA with cuda: X.Y."
        )
    base = torch if torch.cuda_in_image and not tf.cuda_in_image else tf
    needed = max((c for c in (tf.cuda, torch.cuda) if c), key=version_key, default=None)
    return GpuChoice(base.image, needed, base.cuda_in_image, f"{tf.reason}; {torch.reason}")
