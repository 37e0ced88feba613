"""The built wheel's requirements: exactly one onnxruntime build in every install the docs give, no exact
torch pin in a published extra, and the console command declared."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

RUNTIME_BUILDS = {"onnxruntime", "onnxruntime-gpu"}
# the installs the README and scripts/setup.sh name (the extras are combined as a user would)
INSTALLS = [(), ("cpu",), ("gpu",), ("cpu", "openvino"), ("gpu", "openvino"), ("cpu", "train", "export", "test"),
            ("gpu", "train", "export"), ("cpu", "bm25", "ann")]


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("solution", "export", "inference"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir",
                    str(out), str(src)], check=True, capture_output=True, timeout=600)
    (wheel,) = out.glob("patent_similarity-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_metadata(built_wheel):
    with zipfile.ZipFile(built_wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        entry_points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        return Parser().parsestr(archive.read(metadata).decode()), archive.read(entry_points).decode()


def requirements_of(metadata, extras: tuple[str, ...]) -> dict[str, Requirement]:
    """The direct requirements an install with ``extras`` gets (markers evaluated for each extra)."""
    chosen = {}
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
        if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
            chosen[canonicalize_name(requirement.name)] = requirement
    return chosen


@pytest.mark.parametrize("extras", INSTALLS, ids=lambda e: "+".join(e) or "base")
def test_every_documented_install_has_at_most_one_onnxruntime_build(wheel_metadata, extras):
    names = set(requirements_of(wheel_metadata[0], extras))
    builds = names & RUNTIME_BUILDS
    assert len(builds) <= 1, f"[{','.join(extras)}] installs {sorted(builds)}: they overwrite each other"
    if "cpu" in extras:
        assert builds == {"onnxruntime"}
    if "gpu" in extras:
        assert builds == {"onnxruntime-gpu"}
    if not {"cpu", "gpu"} & set(extras):
        assert not builds  # the runtime is always the user's choice of extra


def test_published_extras_bound_torch_from_below_only_and_declare_the_command(wheel_metadata):
    metadata, entry_points = wheel_metadata
    torch = requirements_of(metadata, ("train",))["torch"]
    assert all(spec.operator == ">=" for spec in torch.specifier), torch  # the exact CPU pin is constraints-cpu.txt
    assert "torch==" in (ROOT / "constraints-cpu.txt").read_text()
    assert "patent-sim = inference.console:main" in entry_points


@pytest.mark.slow
@pytest.mark.parametrize("extras", [e for e in INSTALLS if not {"train", "export", "test"} & set(e)],
                         ids=lambda e: "+".join(e) or "base")
def test_each_library_install_resolves_to_one_onnxruntime_build_and_no_torch(built_wheel, tmp_path, extras):
    """What pip would really install (dependencies of dependencies included), from the package index:
    at most one onnxruntime build, never torch or transformers in the torch-free library's installs."""
    report = tmp_path / "report.json"
    spec = f"{built_wheel}[{','.join(extras)}]" if extras else str(built_wheel)
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "-q", "--ignore-installed", "--report",
                    str(report), spec], check=True, capture_output=True, timeout=600)
    names = {canonicalize_name(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}
    assert len(names & RUNTIME_BUILDS) == (1 if {"cpu", "gpu"} & set(extras) else 0), sorted(names)
    assert not names & {"torch", "transformers", "peft"}, sorted(names)
    assert {"numpy", "tokenizers", "tqdm"} <= names
