"""The conda format (environment.yml): conversion to pip, conda-only packages, errors."""

from __future__ import annotations

import pytest

from mlmagic.exceptions import SpecError
from mlmagic.spec import conda, parse
from mlmagic.spec.conda import (
    pip_beyond_conda,
    read_dependencies,
    require_mappable,
    unmapped,
)


def _file(*dependencies: str) -> str:
    return "dependencies:\n" + "".join(f"  - {d}\n" for d in dependencies)


@pytest.mark.parametrize(
    ("spec", "pip"),
    [
        ("numpy", "numpy"),
        ("numpy=1.26", "numpy==1.26.*"),
        ("numpy=1.26.4", "numpy==1.26.4"),
        ("numpy==1.26", "numpy==1.26"),
        ("numpy=1.26.*", "numpy==1.26.*"),
        ("numpy 1.26.*", "numpy==1.26.*"),
        ("numpy 1.26.4 py311h64a7726_0", "numpy==1.26.4"),
        ("numpy=1.26.4=py311h64a7726_0", "numpy==1.26.4"),
        ("numpy>=1.26", "numpy>=1.26"),
        ("numpy >= 1.26 , < 2", "numpy<2,>=1.26"),
        ("numpy!=1.26.0", "numpy!=1.26.0"),
        ("numpy[version='>=1.26,<2']", "numpy<2,>=1.26"),
        ("conda-forge::numpy=1.26", "numpy==1.26.*"),
        ("conda-forge/linux-64::numpy", "numpy"),
        ("scikit-learn=1.5.2", "scikit-learn==1.5.2"),
        # Renamed on PyPI.
        ("pytorch=2.4", "torch==2.4.*"),
        ("pytorch-cpu", "torch"),
        ("py-xgboost>=2", "xgboost>=2"),
        ("tensorflow-gpu", "tensorflow"),
        ("py-opencv", "opencv-python"),
        ("opencv=4.10", "opencv-python==4.10.*"),
        ("pillow", "pillow"),
        ("pytables", "tables"),
        ("msgpack-python", "msgpack"),
        ("matplotlib-base=3.9", "matplotlib==3.9.*"),
        ("pyqt", "pyqt5"),
        ("python-graphviz", "graphviz"),
        ("py-lightgbm", "lightgbm"),
        ("lightgbm", "lightgbm"),
        ("librosa", "librosa"),
    ],
)
def test_conda_specs_convert_to_pip(spec: str, pip: str) -> None:
    parsed = parse(_file(spec))
    assert parsed.pip == (pip,)
    assert unmapped(parsed) == []


@pytest.mark.parametrize(
    "spec",
    [
        "libgcc",
        "libstdcxx-ng",
        "_libgcc_mutex=0.1=main",
        "pip",
        "setuptools",
        "wheel=0.43",
        "openssl=3",
        "python_abi",
    ],
)
def test_packages_pip_does_not_need_are_dropped_silently(spec: str) -> None:
    parsed = parse(_file(spec))
    assert parsed.pip == ()
    assert unmapped(parsed) == []
    require_mappable(parsed)  # nothing to complain about


@pytest.mark.parametrize(
    "spec",
    [
        "cudatoolkit=11.8",
        "cudnn",
        "mkl",
        "mkl-service",
        "nccl",
        "r-base=4.3",
        "r-ggplot2",
        "libblas",
        "libarrow",
        "openjdk=17",
        "nodejs",
        "gcc",
        "gxx",
        "ffmpeg",
        "graphviz",
        "nvidia::cuda-nvcc",
        "numpy=1.26|1.27",  # pip has no "or" of versions
    ],
)
def test_conda_only_packages_are_kept_for_conda_and_reported_by_unmapped(spec: str) -> None:
    parsed = parse(_file("numpy", spec))  # parsing never fails for them
    assert spec in parsed.conda
    assert parsed.pip == ("numpy",)
    assert unmapped(parsed) == [spec]


def test_require_mappable_names_the_packages_and_the_way_out() -> None:
    spec = parse(_file("numpy", "mkl", "cudatoolkit=11.8", "r-base"))
    with pytest.raises(SpecError) as info:
        require_mappable(spec)
    assert str(info.value) == (
        "conda package(s) cudatoolkit=11.8, mkl, r-base have no pip equivalent; remove "
        "them, or build with --solver conda to install them with micromamba."
    )
    assert info.value.line is None
    # With the conda solver the same spec is fine: micromamba installs them.
    conda_spec = spec.with_options(solver="conda")
    assert conda_spec.conda == ("cudatoolkit=11.8", "mkl", "numpy", "r-base")


def test_pip_beyond_conda_is_the_pip_list_without_the_conversions() -> None:
    spec = parse(
        "channels: [conda-forge]\ndependencies:\n  - numpy=1.26\n  - pytorch\n  - py-opencv\n"
        "  - pip:\n    - tomli\n    - mlflow\n"
    )
    assert spec.pip == ("mlflow", "numpy==1.26.*", "opencv-python", "tomli", "torch")
    assert pip_beyond_conda(spec) == ("mlflow", "tomli")
    assert pip_beyond_conda(parse("six\n")) == ("six",)


@pytest.mark.parametrize(
    ("spec", "python", "kept"),
    [
        ("python=3.11", "3.11", ()),
        ("python=3.11.*", "3.11", ()),
        ("python 3.11.9 h955ad1f_0", "3.11", ()),
        ("python==3.12.4", "3.12", ()),
        ("python>=3.10", "3.10", ()),
        ("python", None, ()),
        ("python>=3.10,<3.13", None, ("python>=3.10,<3.13",)),  # micromamba gets it
    ],
)
def test_python_spec_sets_the_python_version(
    spec: str, python: str | None, kept: tuple[str, ...]
) -> None:
    parsed = parse(_file(spec, "numpy"))
    assert parsed.python == python
    assert parsed.conda == ("numpy", *kept)
    assert parsed.pip == ("numpy",)
    assert unmapped(parsed) == []


def test_python_2_is_refused_with_its_line() -> None:
    with pytest.raises(SpecError, match="mlmagic builds Python 3") as info:
        parse(_file("numpy", "python=2.7"))
    assert info.value.line == 3


def test_channels_variables_and_the_pip_list() -> None:
    spec = parse(
        "name: demo\nprefix: /opt/env\nchannels:\n  - pytorch\n  - conda-forge\n"
        "  - nodefaults\n  - pytorch\ndependencies:\n  - pytorch\n  - pip:\n"
        "    - --extra-index-url https://download.pytorch.org/whl/cpu\n    - Tomli >= 2\n"
        "variables:\n  B: 2\n  A: 'x y'\n"
    )
    assert spec.format == "conda"
    assert spec.channels == ("pytorch", "conda-forge")
    assert spec.env == (("A", "x y"), ("B", "2"))
    assert spec.extra_index_urls == ("https://download.pytorch.org/whl/cpu",)
    assert spec.pip == ("tomli>=2", "torch")


def test_conda_spec_spacing_is_made_canonical() -> None:
    a = parse(_file("numpy >= 1.26 , <2", "'conda-forge :: lightgbm'"))
    b = parse(_file("lightgbm", "numpy>=1.26,<2"))
    assert a.conda == ("conda-forge::lightgbm", "numpy>=1.26,<2")
    assert a.pip == b.pip == ("lightgbm", "numpy<2,>=1.26")


def test_read_dependencies_reports_given_lines() -> None:
    result = read_dependencies([(4, "python=3.12"), (5, "numpy")])
    assert (result.python, result.conda, result.pip) == ("3.12", ("numpy",), ("numpy",))
    with pytest.raises(SpecError) as info:
        read_dependencies([(4, "numpy"), (5, ">=1.2")])
    assert info.value.line == 5


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("dependencies:\n  - numpy\n  - [a, b]\n", 3, "dependency 2 is a list"),
        ("dependencies:\n  - numpy\n  - =1.2\n", 3, "is not a conda package spec"),
        ("dependencies:\n  - numpy 1.2 build extra\n", 2, "is not a conda package spec"),
        ("dependencies:\n  - pip: tomli\n", 2, "pip: under dependencies must be a list"),
        ("dependencies:\n  - pip:\n    - -r requirements.txt\n", 3, "no files beside it"),
        ("dependencies:\n  - pip:\n    - six\n    - bad req!\n", 4, "not a valid requirement"),
        ("dependencies: numpy\n", 1, "dependencies must be a list"),
        ("dependencies: []\nchannel: [conda-forge]\n", 2, "'channel' is not a key"),
        ("dependencies: []\nchannels: {a: 1}\n", 2, "channels must be a list of strings"),
        ("dependencies: []\nvariables: [A]\n", 2, "variables must be a mapping"),
        ("dependencies: []\nvariables:\n  1A: x\n", 3, "not an environment variable name"),
        ("dependencies:\n  - numpy\n  bad: [\n", 3, "the YAML does not parse"),
        ("dependencies: []\ndependencies: [numpy]\n", 2, "given twice"),
    ],
)
def test_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        conda.parse(text)
    assert info.value.line == line
    assert fragment in str(info.value)


def test_malformed_yaml_says_what_yaml_says() -> None:
    with pytest.raises(SpecError) as info:
        conda.parse("name: x\ndependencies:\n  - numpy\nchannels: a: b\n")
    assert info.value.line == 4
    assert "the YAML does not parse: mapping values are not allowed here" in str(info.value)


@pytest.mark.parametrize(
    ("text", "claimed"),
    [
        ("dependencies: [numpy]\n", True),
        ("dependencies:\n", True),
        ("name: x\n", False),
        ("numpy\n", False),
        ("dependencies: [\n", False),  # bad YAML is not claimed, and detect never raises
        ("- dependencies\n", False),
    ],
)
def test_detect(text: str, claimed: bool) -> None:
    assert conda.detect(text) is claimed
