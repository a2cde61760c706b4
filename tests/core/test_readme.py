"""Every Python block of the README runs as written (in a fresh process, in an empty folder).

A block that reads ``runs/smdd`` gets a tiny ``smdd`` run made there first by the command
line (the README's own tiny example), so it runs as a reader would after the reproduce
command, only faster."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
TINY_SMDD = ["reproduce", "smdd", "--out", "runs/smdd", "--set", "n_features=40", "--set", "steps=40",
             "--set", "T=3,8,20", "--set", "data_seeds=1", "--set", "infinite_batch=20"]


def _run(args, cwd):
    env = dict(os.environ, JAXMEM_PROGRESS="0")
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_the_readme_has_its_python_examples():
    assert len(BLOCKS) >= 3
    assert all("import jaxmem" in block or "jaxmem" in block.split("\n")[0] for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs_as_written(index, tmp_path):
    block = BLOCKS[index]
    if "runs/smdd" in block:
        _run(["-m", "jaxmem.cli", *TINY_SMDD], tmp_path)
    (tmp_path / "block.py").write_text(block)
    out = _run(["block.py"], tmp_path)
    assert out.strip(), "the block prints what it shows"
