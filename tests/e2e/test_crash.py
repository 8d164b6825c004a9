"""kill -9 under load: an answer a client saw complete (a stream that reached
`data: [DONE]`, a non-stream 200) is in storage after the crash.

16 client threads loop on a server (12 streaming raw SSE, 4 non-stream,
chat and completions), each noting the id and the text of every answer it
got whole. After ~2 s of load the server is SIGKILLed with requests in
flight; a new server on the same --data-dir must start cleanly and hold a
record, status ok, with the same text, for every noted id. `r1d db stat` and
`r1d logs export` then read the same database.

SIGKILL keeps the kernel's page cache, so this checks that the server sends
an answer's last bytes only after its record's commit (what an fsync-less
commit or a reply before the commit would break is exactly what is counted
here), not that the disk survives power loss."""
import http.client
import json
import subprocess
import threading
import time

import pytest

from e2e_util import MODEL_ID, R1D, Server, chat, data_events, join_stream

N_CLIENTS = 16
MIN_LOAD_S = 2.0     # load before the kill
MIN_COMPLETED = 40   # ... and at least this many answers seen whole


class Load:
    """The client threads and what they saw."""

    def __init__(self, server):
        self.server = server
        self.cond = threading.Condition()
        self.completed = {}   # id -> (object, [(reasoning, content)] per choice)
        self.in_flight = 0
        self.started = 0
        self.errors = []      # unexpected answers (not a connection dying)
        self.threads = [threading.Thread(target=self.worker, args=(k,), daemon=True)
                        for k in range(N_CLIENTS)]

    def note(self, rid, obj, texts):
        with self.cond:
            assert rid not in self.completed, rid
            self.completed[rid] = (obj, texts)
            self.cond.notify_all()

    def body(self, k, i):
        seed = 1000 * k + i
        tokens = 16 + (7 * k + 3 * i) % 40
        if k % 8 == 7:  # completions
            return "/v1/completions", {"model": MODEL_ID, "prompt": f"client {k} request {i}",
                                       "max_tokens": tokens, "temperature": 0.9, "seed": seed,
                                       "ignore_eos": True}
        return "/v1/chat/completions", chat(f"client {k} request {i}", max_tokens=tokens, temperature=0.9,
                                            seed=seed, ignore_eos=True, thinking_budget=tokens // 2,
                                            n=2 if k % 5 == 0 else 1)

    def one(self, k, i):
        path, body = self.body(k, i)
        chat_ = path.endswith("chat/completions")
        if k % 4 == 3:  # non-stream
            r = self.server.post(path, body, timeout=60)
            if r.status != 200:
                self.errors.append(r)
                return
            j = r.json()
            if chat_:
                texts = [(c["message"]["reasoning_content"], c["message"]["content"]) for c in j["choices"]]
            else:
                texts = [(None, c["text"]) for c in sorted(j["choices"], key=lambda c: c["index"])]
            self.note(j["id"], j["object"], texts)
            return
        st = self.server.stream(path, dict(body, stream=True), timeout=60)
        try:
            if st.status != 200:
                self.errors.append((st.status, st.resp.read()))
                return
            events = []
            for kind, d in st.events():
                events.append((kind, d))
                if kind == "data" and d == "[DONE]":
                    break
            else:
                return  # the connection died before [DONE]: not completed
        finally:
            st.close()
        chunks = data_events(events)
        if chat_:
            joined = join_stream(chunks)
            texts = [(joined[c]["reasoning"], joined[c]["content"]) for c in sorted(joined)]
            self.note(chunks[0]["id"], "chat.completion", texts)
        else:
            self.note(chunks[0]["id"], "text_completion",
                      [(None, "".join(c["choices"][0]["text"] for c in chunks))])

    def worker(self, k):
        i = 0
        while True:
            i += 1
            with self.cond:
                self.in_flight += 1
                self.started += 1
            try:
                self.one(k, i)
            except (OSError, http.client.HTTPException, ValueError):
                return  # the server is gone (ValueError: a torn chunk's JSON)
            finally:
                with self.cond:
                    self.in_flight -= 1


def record(server, rid):
    r = server.get(f"/admin/v1/interactions/{rid}")
    return r.status, (r.json() if r.status == 200 else r.body)


@pytest.fixture(scope="module")
def crashed(tiny_model):
    """Runs the load, kills the server, restarts it on the same data dir;
    yields (second server, what the clients saw complete, numbers)."""
    s1 = Server(tiny_model, ["--max-num-seqs", 32, "--max-queued", 64])
    s2 = None
    try:
        s1.start()
        load = Load(s1)
        t0 = time.monotonic()
        for t in load.threads:
            t.start()
        with load.cond:
            ok = load.cond.wait_for(lambda: len(load.completed) >= MIN_COMPLETED
                                    and time.monotonic() - t0 >= MIN_LOAD_S, timeout=60)
            in_flight = load.in_flight
        assert ok, f"only {len(load.completed)} answers in 60 s"
        s1.proc.kill()
        s1.proc.wait()
        for t in load.threads:
            t.join(30)
        assert not any(t.is_alive() for t in load.threads), "a client thread still runs after the kill"
        assert not load.errors, load.errors[:3]
        assert s1.proc.returncode == -9
        numbers = {"load_s": time.monotonic() - t0, "started": load.started,
                   "completed": len(load.completed), "in_flight_at_kill": in_flight}
        s2 = Server(tiny_model, ["--data-dir", s1.data_dir])
        s2.start()
        yield s2, dict(load.completed), numbers
    finally:
        if s2:
            s2.cleanup()
        s1.cleanup()  # removes the data dir


def test_every_completed_answer_survives_kill9(crashed):
    s2, completed, numbers = crashed
    assert numbers["in_flight_at_kill"] > 0, numbers
    # it started cleanly: no error line, storage healthy
    with s2.cond:
        bad = [e for e in s2.events if e.get("level") in ("error", "fatal")]
    assert not bad, bad
    assert s2.get("/health").json() == {"status": "ok"}
    missing, wrong = [], []
    for rid, (obj, texts) in completed.items():
        status, rec = record(s2, rid)
        if status != 200:
            missing.append((rid, status, rec))
            continue
        got = [(c.get("reasoning_content"), c["content"]) for c in rec["choices"]]
        if rec["status"] != "ok" or rec["object"] != obj or got != texts:
            wrong.append((rid, rec["status"], got, texts))
    recs = [json.loads(line) for line in s2.get("/admin/v1/interactions?limit=10000").text.splitlines()]
    numbers.update(present=len(completed) - len(missing), stored=len(recs))
    print(f"\ncrash test: {numbers}")
    assert not missing, f"{len(missing)} of {len(completed)} completed answers lost: {missing[:3]}"
    assert not wrong, wrong[:3]
    # every stored record is whole JSON, in key order; some may be answers
    # whose last bytes the kill cut off after their commit
    ids = [r["id"] for r in recs]
    assert set(completed) <= set(ids)
    assert sorted(ids, key=lambda i: i.rsplit("-", 1)[1]) == ids
    assert len(recs) <= numbers["started"]
    assert all(r["status"] == "ok" for r in recs), [r["status"] for r in recs]
    # new answers go on after the old ones (ids keep growing past a restart)
    r = s2.post("/v1/chat/completions", chat("after the crash", max_tokens=3))
    assert r.status == 200, r
    new = r.json()["id"]
    assert new.rsplit("-", 1)[1][:16] > max(i.rsplit("-", 1)[1][:16] for i in ids)
    assert record(s2, new)[0] == 200


def test_cli_reads_the_crashed_database(crashed):
    s2, completed, _ = crashed
    if subprocess.run([R1D, "help", "db"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("`r1d db` is not built yet")
    p = subprocess.run([R1D, "db", "stat", "--json", "--data-dir", s2.data_dir], capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    n = st["tables"]["interactions"]["entries"]
    assert n >= len(completed) + 1, (n, len(completed))
    assert st["schema_version"] == 1
    assert st["data_bytes"] <= st["file_bytes"] <= st["map_size"], st
    # the text form runs too
    p = subprocess.run([R1D, "db", "stat", "--data-dir", s2.data_dir], capture_output=True, timeout=60)
    assert p.returncode == 0 and b"interactions" in p.stdout, p
    # the export holds every completed answer
    p = subprocess.run([R1D, "logs", "export", "--format", "raw", "--data-dir", s2.data_dir],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert len(rows) == n
    assert set(completed) <= {r["id"] for r in rows}
    # the messages form: one row per choice of each chat answer
    p = subprocess.run([R1D, "logs", "export", "--data-dir", s2.data_dir], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    msgs = [json.loads(line) for line in p.stdout.decode().splitlines()]
    chats = [r for r in rows if r["object"] == "chat.completion"]
    assert len(msgs) == sum(len(r["choices"]) for r in chats)
    assert all(m["messages"][-1]["role"] == "assistant" for m in msgs)
