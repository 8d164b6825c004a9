"""Shared pieces of the CLI tests: the r1d binary, the shared fixtures, and a
tiny random model made once per session with `r1d model init`."""
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

R1D = os.environ.get("R1D_BIN", str(Path(__file__).resolve().parents[2] / "build" / "r1d"))
SHARED = Path(os.environ.get("R1D_SHARED", Path(__file__).resolve().parents[3] / "shared"))
FIXTURES = SHARED / "fixtures"


def run(args, stdin=None, check=False, preexec_fn=None, timeout=300):
    """Runs r1d with args; returns the CompletedProcess (text mode, bytes for
    stdin allowed). preexec_fn runs in the child before r1d (limits)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    p = subprocess.run([R1D] + list(args), input=data, capture_output=True, timeout=timeout,
                       preexec_fn=preexec_fn)
    p.out = p.stdout.decode("utf-8", errors="replace")
    p.err = p.stderr.decode("utf-8", errors="replace")
    if check and p.returncode != 0:
        raise AssertionError(f"r1d {' '.join(args)} failed ({p.returncode}): {p.err}")
    return p


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tiny"
    run(["model", "init", "--arch", "qwen2", "--preset", "tiny", "--seed", "7", "--out", str(out)], check=True)
    return out


@pytest.fixture()
def model_copy(tiny_model, tmp_path):
    """A private copy of the tiny model that a test may damage."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model, dst)
    return dst


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def poison(model_dir, tensor="model.norm.weight"):
    """Writes a NaN into one tensor of model.safetensors (F32)."""
    path = Path(model_dir) / "model.safetensors"
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    start = header[tensor]["data_offsets"][0]
    assert header[tensor]["dtype"] == "F32"
    raw[8 + n + start:8 + n + start + 4] = struct.pack("<f", float("nan"))
    path.write_bytes(bytes(raw))
