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


def test_no_package_module_over_700_lines():
    """Modules stay small enough to read (issue 11): split by concept when one grows."""
    pkg = os.path.join(ROOT, "python", "lstm_native")
    sizes = {}
    for folder, _dirs, files in os.walk(pkg):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    sizes[os.path.relpath(path, pkg)] = sum(1 for _ in f)
    assert len(sizes) > 20
    assert not {k: n for k, n in sizes.items() if n > 700}
