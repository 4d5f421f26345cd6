"""The README's complete examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def run_example(marker: str, tmp_path: Path) -> list[str]:
    """Run the Python block after ``<!-- marker -->`` in the README; its output lines."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"the README lost its example {marker!r}"
    script = tmp_path / "example.py"
    script.write_text(match.group(1), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_readme_example_runs(tmp_path: Path) -> None:
    lines = run_example("readme-example", tmp_path)
    assert lines[0] == "ExportStatusChanged "
    assert "ExportCompleted " in lines
    assert lines[-1] == "done: COMPLETED"


def test_readme_create_example_runs(tmp_path: Path) -> None:
    assert run_example("readme-example-create", tmp_path) == [
        "server 2.8.0",
        "done: 1 D:\\Exports\\incident-17 2024-01-19 10:00:00+00:00",
    ]
