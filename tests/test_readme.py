"""Every Python snippet of the README runs, in order, in one namespace (as a reader would type
them into one session), in a temporary folder."""

import os
import re
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snippets():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_snippets():
    assert len(snippets()) >= 6


def test_every_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, code in enumerate(snippets()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning of the short examples
            try:
                exec(compile(code, f"README.md snippet {i}", "exec"), namespace)
            except Exception as e:  # pragma: no cover - the message is the point
                pytest.fail(f"README snippet {i} failed: {type(e).__name__}: {e}\n{code}")
    assert os.path.exists(tmp_path / "model.npz") and os.path.exists(tmp_path / "ckpt.npz")
