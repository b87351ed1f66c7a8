"""docs/weights.md runs as printed: every python block on its own, in a fresh namespace, each
``print(...)  # text`` printing that text; the commands (slow) in a scratch folder, writing the
files their comments name."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "weights.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def _printed_comments(block: str) -> list[str]:
    return re.findall(r"^\s*print\(.*\)\s+# (.*)$", block, re.M)


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.mark.parametrize("index", range(4))
def test_every_python_block_of_the_weights_page_runs_and_prints_what_it_says(
    index, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("torch")
    pytest.importorskip("flax")
    blocks = _blocks("python")
    assert len(blocks) == 4 and _printed_comments(blocks[index])
    monkeypatch.chdir(tmp_path)  # the blocks write their files where they run
    exec(compile(blocks[index], f"{DOC.name} block {index}", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.splitlines() == _printed_comments(blocks[index])


@pytest.mark.slow
def test_the_commands_of_the_weights_page_write_the_files_they_name(tmp_path):
    lines = [line for block in _blocks("bash") for line in block.strip().splitlines()]
    assert lines and all(line.startswith("jaxnn ") for line in lines)
    for line in lines:
        command, _, comment = line.partition("#")
        argv = [sys.executable, "-m", "jaxnn", *shlex.split(command)[1:]]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=_env()
        )
        assert done.returncode == 0, done.stderr[-3000:]
        named = re.findall(r"[\w./]+\.(?:safetensors|json)", comment)
        folder = Path(named[0]).parent if named else Path()
        for name in named:
            path = tmp_path / (name if "/" in name else folder / name)
            assert path.is_file(), path
