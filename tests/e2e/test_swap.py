"""Hot swap under load (issue 7's "must show"): 32 streaming clients run
across a weight swap and all complete without error; the logged
weight_version of each is the version it started on; requests after the
swap use the new weights (their greedy text changes); a rollback restores
the old ones (the same greedy text as before). Plus abort-and-swap, and the
admin routes' bad input."""
import subprocess
import threading
import time

import pytest

from e2e_util import MODEL_ID, R1D, assert_error

N_STREAMS = 32


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """Same shapes as the served tiny model, other weights (seed 2)."""
    out = tmp_path_factory.mktemp("models") / "tiny-seed2"
    p = subprocess.run([R1D, "model", "init", "--arch", "qwen2", "--preset", "tiny",
                        "--seed", "2", "--out", str(out)], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return out


def greedy(client, prompt="Tell me a story"):
    r = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=24,
                                  temperature=0, extra_body={"ignore_eos": True})
    return r.id, r.choices[0].text


def record(server, rid):
    r = server.get(f"/admin/v1/interactions/{rid}")
    assert r.status == 200, r
    return r.json()


def wait_logged(server, rid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = server.get(f"/admin/v1/interactions/{rid}")
        if r.status == 200:
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"{rid} never logged")


def test_swap_under_load_and_rollback(start_server, other_model):
    s = start_server(["--max-num-seqs", 64, "--max-queued", 256])
    client = s.client()
    before_id, before = greedy(client)
    assert record(s, before_id)["weight_version"] == 1

    started = threading.Barrier(N_STREAMS + 1, timeout=60)
    results = [None] * N_STREAMS

    def worker(k):
        try:
            stream = client.chat.completions.create(
                model=MODEL_ID, stream=True, max_tokens=160,
                messages=[{"role": "user", "content": f"client {k}: count"}],
                extra_body={"ignore_eos": True}, seed=k,
                stream_options={"include_usage": True})
            rid, finish, n, first = None, None, 0, True
            for chunk in stream:
                rid = chunk.id
                if first:
                    first = False
                    started.wait()
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
                if chunk.usage:
                    n = chunk.usage.completion_tokens
            results[k] = (rid, finish, n, None)
        except Exception as e:  # noqa: BLE001 - reported below
            results[k] = (None, None, 0, repr(e))
            try:
                started.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(N_STREAMS)]
    for t in threads:
        t.start()
    started.wait()  # every stream has its first chunk: all in flight
    t0 = time.monotonic()
    r = s.post("/admin/v1/weights/swap", {"path": str(other_model)}, key=None)
    swap_wall = time.monotonic() - t0
    assert r.status == 200, r
    swap = r.json()
    assert swap["old_weight_version"] == 1 and swap["new_weight_version"] == 2
    assert swap["in_flight_requests"] >= 1, swap
    assert swap["aborted_requests"] == 0
    assert 0 <= swap["flip_seconds"] < 0.1 and swap["stage_seconds"] < swap_wall + 0.01

    # new requests take the new weights at once, while the old ones run
    after_id, after = greedy(client)
    assert after != before
    assert record(s, after_id)["weight_version"] == 2
    w = s.get("/admin/v1/weights", key=None).json()
    assert w["live"] == 2 and w["previous"] == 1
    models = client.models.list().data
    assert models[0].model_extra["weight_version"] == 2

    for t in threads:
        t.join(120)
    errors = [r for r in results if r is None or r[3] is not None or r[1] not in ("length", "stop")]
    assert not errors, errors
    for rid, finish, n, _ in results:
        assert finish == "length" and n == 160
        # each logged on the version it started on
        assert wait_logged(s, rid)["weight_version"] == 1

    # rollback: the old weights (and their greedy text) are back
    r = s.post("/admin/v1/weights/rollback", None, key=None)
    assert r.status == 200, r
    rb = r.json()
    assert rb["old_weight_version"] == 2 and rb["new_weight_version"] == 1
    back_id, back = greedy(client)
    assert back == before
    assert record(s, back_id)["weight_version"] == 1
    assert_error(s.post("/admin/v1/weights/rollback", None, key=None), 404, code="not_found")
    m = s.metrics()
    assert m["r1d_weight_swaps_total"] == 2
    # the version rolled back from is freed once idle
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        w = s.get("/admin/v1/weights", key=None).json()
        if [v["weight_version"] for v in w["versions"]] == [1]:
            break
        time.sleep(0.1)
    assert [v["weight_version"] for v in w["versions"]] == [1], w


def test_abort_and_swap(start_server, other_model):
    s = start_server(["--max-num-seqs", 16])
    client = s.client()
    got_first = threading.Event()
    out = {}

    def worker():
        try:
            stream = client.chat.completions.create(
                model=MODEL_ID, stream=True, max_tokens=1500,
                messages=[{"role": "user", "content": "go on"}], extra_body={"ignore_eos": True})
            for _ in stream:
                got_first.set()
            out["error"] = None
        except Exception as e:  # noqa: BLE001 - the expected outcome
            out["error"] = str(e)
        got_first.set()

    t = threading.Thread(target=worker)
    t.start()
    assert got_first.wait(30)
    r = s.post("/admin/v1/weights/swap", {"path": str(other_model), "abort_in_flight": True},
               key=None)
    assert r.status == 200, r
    assert r.json()["aborted_requests"] == 1
    t.join(60)
    assert out["error"] and "aborted" in out["error"], out


def test_swap_bad_input(start_server, tiny_model, tmp_path):
    s = start_server()
    post = lambda body: s.post("/admin/v1/weights/swap", body, key=None)  # noqa: E731
    assert_error(post({}), 400, param="path")
    assert_error(post({"path": 3}), 400, param="path")
    assert_error(post({"path": "x", "version": "ckpt-1"}), 400, param="path")
    assert_error(post({"path": str(tmp_path / "none")}), 400, param="path",
                 message_has=("config.json",))
    assert_error(post({"version": "ckpt-00000000000000ff"}), 404, param="version")
    assert_error(post({"path": str(tiny_model), "abort_in_flight": "yes"}), 400,
                 param="abort_in_flight")
    llama = tmp_path / "llama"
    subprocess.run([R1D, "model", "init", "--arch", "llama", "--preset", "tiny", "--out",
                    str(llama)], check=True, capture_output=True)
    assert_error(post({"path": str(llama)}), 400, param="path", message_has=("qkv_bias",))
    # nothing changed
    w = s.get("/admin/v1/weights", key=None).json()
    assert w["live"] == 1 and w["previous"] is None and w["swaps"] == 0
    # the same folder again is a new version of the same weights
    r = post({"path": str(tiny_model)})
    assert r.status == 200 and r.json()["new_weight_version"] > 1
