"""The README's Python quick start is examples/quickstart.py, and it runs as written (from the
repository root: here a scratch directory that sees the same testdata/)."""

import os
import runpy
import subprocess
import sys

from conftest import ROOT


def readme_block(language, marker):
    """The README's fenced ```language block that contains `marker`."""
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```" + language + "\n")[1:]
    found = [b.split("```", 1)[0] for b in blocks if marker in b]
    assert len(found) == 1, f"{len(found)} ```{language} blocks with {marker!r} in README.md"
    return found[0]


def test_readme_quick_start_is_the_example():
    assert readme_block("python", "GPTQQuantizer(") == (ROOT / "examples" / "quickstart.py").read_text()


def test_quick_start_runs_as_written(tmp_path, capsys):
    os.symlink(ROOT / "testdata", tmp_path / "testdata")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    finally:
        os.chdir(cwd)
    assert (tmp_path / "out" / "tiny-llama-gptq" / "model.safetensors").is_file()
    assert len(capsys.readouterr().out.strip()) > 0


def test_installed_package_is_used():
    """scripts/test_python.sh runs this suite against the package pip installed."""
    if os.environ.get("GPTQ_EXPECT_INSTALLED") != "1":
        return
    out = subprocess.run([sys.executable, "-c", "import gptqcpp; print(gptqcpp.__file__)"], capture_output=True,
                         text=True, check=True, cwd="/").stdout.strip()
    assert "site-packages" in out and not out.startswith(str(ROOT / "python")), out
