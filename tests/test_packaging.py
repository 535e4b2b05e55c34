"""Packaging facts the README's commands rely on."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject():
    if sys.version_info < (3, 11):
        tomllib = pytest.importorskip("tomli")
    else:
        import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_dependency_groups_equal_the_extras():
    """`pip install --group test` (the README's test command: no second build) installs what
    the `test` extra names."""
    cfg = _pyproject()
    for name, group in cfg["dependency-groups"].items():
        assert group == cfg["project"]["optional-dependencies"][name], name


def test_run_time_dependencies_are_numpy_and_scikit_learn():
    deps = _pyproject()["project"]["dependencies"]
    assert sorted(d.split(">")[0].split("=")[0] for d in deps) == ["numpy", "scikit-learn"]
