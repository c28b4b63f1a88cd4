"""The README's commands and library example run as written."""

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_library_example_runs(tmp_path, capsys):
    (block,) = re.findall(r"As a library.*?```python\n(.*?)```", README.read_text(), re.S)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out.split()
    assert out[:2] == ["camera_optical", "m"] and int(out[3]) > 1000
    written = {p.name for p in (tmp_path / "one2345-library").iterdir()}
    assert {"mesh.ply", "mesh.glb", "views.png", "result.json"} <= written


def test_ci_runs_the_readme_test_command():
    (command,) = re.findall(
        r"Install the test extras and run the tests:\n\n```bash\n(.*?)\n```", README.read_text(), re.S
    )
    assert command in (README.parent / ".ci" / "run").read_text()
