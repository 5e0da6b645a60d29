"""Every example in README.md and docs/*.md runs, in order, as written.

```bash blocks run line by line through the CLI; ```python blocks run in a fresh interpreter. Each
document runs in a fresh folder holding the repository's ``examples/`` (so relative paths
work as they do from a clone). Set-up and development commands (pip, pytest, ruff,
.ci/run, benchmark scripts) are not rerun here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cli_helpers import run_cli
from conftest import ROOT, SHARED_DATA

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RERUN = ("pip ", "python -m pytest", "ruff ", "bash .ci/run", "python benchmarks/")
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in BLOCK.findall(path.read_text(encoding="utf-8"))]


def shell_lines(body: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", body)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def run_shell_line(line: str) -> None:
    line = line.split("  #")[0]
    if line.startswith(NOT_RERUN):
        return
    if "--engine apertium" in line and shutil.which("lt-proc") is None:
        # A system package no registry carries: the line is left out, said out loud.
        warnings.warn(
            f"not run (Apertium is not installed: apt-get install apertium apertium-en-es): {line}",
            stacklevel=2,
        )
        return
    if "../shared/data" in line:
        if not SHARED_DATA.exists():
            pytest.skip("example needs ../shared/data")
        line = line.replace("../shared/data", str(SHARED_DATA))
    for command in line.split(" && "):
        words = shlex.split(command)
        if words[:2] == ["python", "-m"] and words[2].startswith("augtool.testing."):
            done = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True)
            assert done.returncode == 0, f"`{command}` failed:\n{done.stderr}"
            continue
        assert words[0] == "augtool", f"documented command is not runnable here: {command}"
        result = run_cli(*words[1:])
        assert result.exit_code == 0, f"`{command}` failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_documented_examples_run(
    doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = blocks(doc)
    if not found:
        pytest.skip(f"{doc.name} has no runnable examples")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    for kind, body in found:
        if kind == "bash":
            for line in shell_lines(body):
                run_shell_line(line)
        else:
            # A separate interpreter: examples may register backends or change globals.
            done = subprocess.run(
                [sys.executable, "-c", body], cwd=tmp_path, capture_output=True, text=True
            )
            assert done.returncode == 0, f"{doc.name} python example failed:\n{done.stderr}"
    assert os.listdir(tmp_path / "runs") or doc.name != "README.md"
