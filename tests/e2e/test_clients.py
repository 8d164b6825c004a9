"""Runs every example under clients/ against the shared server, so that the
examples cannot rot: each must exit 0 and print what it promises."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from e2e_util import MODEL_ID, ROOT, data_events

CLIENTS = ROOT / "clients"


def run_client(server, cmd, *args):
    env = dict(os.environ, R1D_URL=server.url, R1D_API_KEY=server.api_key)
    env.pop("R1D_MODEL", None)
    env.pop("OPENAI_BASE_URL", None)
    p = subprocess.run(list(cmd) + list(args), env=env, capture_output=True, timeout=120)
    out = p.stdout.decode("utf-8", errors="replace")
    assert p.returncode == 0, (cmd, p.returncode, out[-2000:], p.stderr.decode(errors="replace")[-2000:])
    return out


def curl(server, name, *args):
    assert shutil.which("curl"), "curl is not installed (the curl examples need it)"
    return run_client(server, ["bash", str(CLIENTS / "curl" / name)], *args)


def py(server, name, *args):
    return run_client(server, [sys.executable, str(CLIENTS / "python" / name)], *args)


def test_every_example_is_covered():
    have = {p.name for p in (CLIENTS / "curl").glob("*.sh") if not p.name.startswith("_")}
    have |= {p.name for p in (CLIENTS / "python").glob("*.py") if not p.name.startswith("_")}
    tested = {"chat.sh", "chat_stream.sh", "completions.sh", "models.sh", "tokenize.sh", "detokenize.sh",
              "ops.sh", "chat.py", "chat_stream.py", "completions.py", "models.py"}
    assert have == tested, have ^ tested
    readme = (CLIENTS / "README.md").read_text()
    for name in have:
        assert name in readme, name


def test_curl_chat(server):
    j = json.loads(curl(server, "chat.sh", "What is 2+2?"))
    m = j["choices"][0]["message"]
    assert m["role"] == "assistant" and "reasoning_content" in m


def test_curl_chat_stream(server):
    out = curl(server, "chat_stream.sh")
    events = [("data", l[6:]) for l in out.splitlines() if l.startswith("data: ")]
    chunks = data_events(events)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_curl_completions(server):
    lines = [l for l in curl(server, "completions.sh", "Hello").splitlines() if l.strip()]
    assert len(lines) == 2
    a, b = json.loads(lines[0]), json.loads(lines[1])
    assert a["object"] == "text_completion"
    assert b["choices"][0]["text"].startswith("Hi!")  # echo of [72, 105, 33]
    assert b["choices"][0]["logprobs"]["token_logprobs"][0] is None


def test_curl_models(server):
    assert json.loads(curl(server, "models.sh"))["data"][0]["id"] == MODEL_ID


def test_curl_tokenize_detokenize(server):
    lines = [json.loads(l) for l in curl(server, "tokenize.sh", "abc").splitlines() if l.strip()]
    assert lines[0]["tokens"] and lines[0]["count"] == 3
    assert lines[1]["count"] > 3
    ids = ",".join(str(i) for i in lines[0]["tokens"])
    assert json.loads(curl(server, "detokenize.sh", ids)) == {"prompt": "abc"}


def test_curl_ops(server):
    out = curl(server, "ops.sh")
    health = [l for l in out.splitlines() if l.startswith("GET /health:")]
    assert health and json.loads(health[0].split(":", 1)[1]) == {"status": "ok"}, out
    assert '"ready"' in out and '"version"' in out
    assert "r1d_" in out.split("GET /metrics:")[1]


def test_py_chat(server):
    out = py(server, "chat.py", "hi")
    assert "thinking:" in out and "answer:" in out and "finish:" in out


def test_py_chat_stream(server):
    out = py(server, "chat_stream.py", "hi")
    assert "[finish:" in out and "reasoning]" in out, out  # finish and usage lines
    if "thinking:" in out and "answer:" in out:
        assert out.index("thinking:") < out.index("answer:"), out


def test_py_completions(server):
    out = py(server, "completions.py")
    # repr() picks double quotes when the sampled text holds a single quote
    assert "text:" in out and ("echo: 'Hi!" in out or 'echo: "Hi!' in out), out


def test_py_models(server):
    assert py(server, "models.py").startswith(MODEL_ID + " |")


@pytest.mark.parametrize("name", ["models.py"])
def test_py_openai_base_url(server, name):
    env = dict(os.environ, OPENAI_BASE_URL=server.url + "/v1", R1D_API_KEY=server.api_key)
    env.pop("R1D_URL", None)
    p = subprocess.run([sys.executable, str(CLIENTS / "python" / name)], env=env, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().startswith(MODEL_ID)
