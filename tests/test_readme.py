import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs_and_its_gradients_check(tmp_path):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loss = float(re.search(r"loss after 100 steps: ([0-9.]+)", done.stdout).group(1))
    assert loss < 0.1
    assert "gradients agree with finite differences" in done.stdout


def test_the_model_contract_example_runs_as_printed(tmp_path):
    page = (ROOT / "docs" / "model-contract.md").read_text()
    block = re.findall(r"```python\n(.*?)```", page, re.S)[0]
    script = tmp_path / "contract.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(8, 10) {}"


def test_readme_quickstart_is_the_two_make_targets_ci_runs():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make train", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_short_and_links_every_guide():
    readme = (ROOT / "README.md").read_text()
    assert len(readme) < 15_000
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md", "changelog.md"}
    pages -= {"architecture.md"}  # linked as ARCHITECTURE.md, the file the page includes
    assert {p for p in pages if f"(docs/{p})" not in readme} == set()
