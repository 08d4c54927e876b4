"""Shared fixtures of the gptqcpp tests: the repository's test data, the `gptq` CLI to compare with,
and a few quantized checkpoints made once per session."""

import filecmp
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "testdata" / "models"
DATA = ROOT / "testdata" / "data"
CALIB = DATA / "calib.txt"
EVAL = DATA / "eval.txt"
# Small, quick settings shared by the API and CLI runs that are compared.
QUICK = {"nsamples": 16, "model_seqlen": 128, "damp_percent": 0.01}
QUICK_CLI = ["--nsamples", "16", "--seqlen", "128", "--damp", "0.01"]


def gptq_exe():
    exe = Path(os.environ.get("GPTQ_EXE", ROOT / os.environ.get("BUILD_DIR", "build") / "gptq"))
    if not exe.exists():
        pytest.fail(f"the gptq CLI is needed to compare with: {exe} missing (build it, or set GPTQ_EXE)")
    return str(exe)


def run_cli(*args, check=True):
    """Runs `gptq ARGS`; returns the CompletedProcess (text)."""
    p = subprocess.run([gptq_exe(), *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"gptq {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def cli_error(*args):
    """(exit code, message) of a failing CLI run: the message is what follows 'error: '."""
    p = run_cli(*args, check=False)
    assert p.returncode != 0, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert lines, p.stderr
    return p.returncode, lines[-1][len("error: "):]


def same_tree(a, b):
    """Whether two directories hold the same files with the same bytes."""
    a, b = Path(a), Path(b)
    names_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    names_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    if names_a != names_b:
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names_a)


def read_json(path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def quantized_llama(tmp_path_factory):
    """tiny-llama, GPTQ 4-bit g128 act-order, made through the API."""
    import gptqcpp

    out = tmp_path_factory.mktemp("session") / "tiny-llama-w4"
    gptqcpp.GPTQQuantizer(bits=4, dataset=str(CALIB), desc_act=True, **QUICK).quantize_model(
        MODELS / "tiny-llama", out, progress=False)
    return out
