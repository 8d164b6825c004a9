"""Fixtures of the end-to-end tests of `r1d serve` (helpers in e2e_util.py,
a module name of its own so that tests/cli's conftest never shadows it):
the tiny model, the shared server, the openai client, and a factory for
servers with other flags."""
import subprocess

import pytest

from e2e_util import ADMIN_KEY, API_KEY, MODEL_ID, R1D, Server


# --- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / MODEL_ID
    p = subprocess.run([R1D, "model", "init", "--arch", "qwen2", "--preset", "tiny",
                        "--seed", "1", "--out", str(out)], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return out


@pytest.fixture(scope="session")
def key_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    api, admin = d / "api.keys", d / "admin.keys"
    api.write_text(f"# e2e keys\n{API_KEY}\n")
    admin.write_text(f"{ADMIN_KEY}\n")
    return api, admin


def _check_serve_exists():
    p = subprocess.run([R1D, "help", "serve"], capture_output=True, timeout=30)
    if p.returncode != 0:
        pytest.fail(f"`{R1D} help serve` failed ({p.returncode}): the server is not built:\n"
                    + p.stderr.decode(errors="replace"), pytrace=False)


@pytest.fixture(scope="session")
def server(tiny_model, key_files):
    """The shared server: API and admin keys, room for 64 concurrent streams,
    a 256 KiB body limit."""
    _check_serve_exists()
    api, admin = key_files
    s = Server(tiny_model, ["--api-key-file", api, "--admin-key-file", admin,
                            "--max-num-seqs", 64, "--max-queued", 256,
                            "--max-body", 262144, "--keepalive", 2],
               api_key=API_KEY, admin_key=ADMIN_KEY)
    s.start()
    yield s
    rc = s.stop()
    s.cleanup()
    assert rc == 0, f"shared server exited {rc} on SIGTERM:\n{s.stderr_tail()}"


@pytest.fixture(scope="session")
def client(server):
    return server.client()


@pytest.fixture()
def start_server(tiny_model):
    """Factory: start_server(args, env=None, api_key=None) -> a started Server,
    killed at teardown if the test left it running."""
    _check_serve_exists()
    started = []

    def start(args=(), env=None, api_key=None, admin_key=None, wait_ready=True, model=None):
        s = Server(model or tiny_model, args, env=env, api_key=api_key, admin_key=admin_key)
        started.append(s)
        return s.start(wait_ready=wait_ready)

    yield start
    for s in started:
        s.cleanup()


@pytest.fixture(scope="session")
def think_end_id(server):
    t = server.tokenize(prompt="</think>")
    assert t["count"] == 1 and len(t["tokens"]) == 1, t
    return t["tokens"][0]


@pytest.fixture(scope="session")
def byte_ids(server):
    """Token ids of single ASCII letters (the tiny tokenizer is byte-level)."""
    out = {}
    for ch in "abz":
        t = server.tokenize(prompt=ch)
        assert t["tokens"] and len(t["tokens"]) == 1, t
        out[ch] = t["tokens"][0]
    return out
