"""Every Python snippet of the README runs, in order, in one namespace (as a reader would type
them into one session), in a temporary folder.

A snippet whose first lines hold ``# requires: pkg1, pkg2`` needs optional packages: it runs only
when each of them imports (otherwise it is skipped and reported), so such snippets must be
self-contained (later snippets must not need what they define)."""

import importlib
import os
import re
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snippets():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def requirements(code):
    """The packages named on the snippet's leading ``# requires:`` comment lines."""
    names = []
    for line in code.splitlines():
        if not line.startswith("#"):
            break
        m = re.match(r"#\s*requires:\s*(.*)", line)
        if m:
            names += [n.strip() for n in m.group(1).split(",") if n.strip()]
    return names


def missing_requirements(code):
    missing = []
    for name in requirements(code):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def test_requirement_marker_parsing():
    assert requirements("# requires: onnx, onnxruntime\nimport onnx\n") == ["onnx", "onnxruntime"]
    assert requirements("import numpy\n# requires: torch\n") == []
    assert missing_requirements("# requires: a_package_that_does_not_exist_\n") == [
        "a_package_that_does_not_exist_"
    ]


def test_readme_has_snippets():
    assert len(snippets()) >= 6


def test_every_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    skipped = []
    for i, code in enumerate(snippets()):
        missing = missing_requirements(code)
        if missing:
            skipped.append(f"snippet {i} (needs {', '.join(missing)})")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning of the short examples
            try:
                exec(compile(code, f"README.md snippet {i}", "exec"), namespace)
            except Exception as e:  # pragma: no cover - the message is the point
                pytest.fail(f"README snippet {i} failed: {type(e).__name__}: {e}\n{code}")
    assert os.path.exists(tmp_path / "model.npz") and os.path.exists(tmp_path / "ckpt.npz")
    if skipped:  # not a warning: the test configuration turns warnings into errors
        with capsys.disabled():
            print("\nREADME snippets skipped for missing optional packages: " + "; ".join(skipped))
