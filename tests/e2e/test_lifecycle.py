"""The server as a process: client disconnects cancel, 64 concurrent streams,
queue limits (429, Retry-After) and keep-alive comments, SIGTERM drain,
systemd notify (READY/WATCHDOG/STOPPING), SIGHUP key reload, keys from the
environment, and the flags that rename things (--reasoning-field,
--served-model-name, --max-model-len)."""
import asyncio
import json
import os
import signal
import socket
import tempfile
import threading
import time

import pytest

from e2e_util import (MODEL_ID, assert_error, chat, data_events, join_stream, metric)

LONG = 2000  # prompt "hi" (~7 tokens) + 2000 fits the context of 2048


def poll(fn, timeout, step=0.05):
    """Calls fn until it returns a truthy value; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


class StreamThread(threading.Thread):
    """Reads one raw SSE stream to the end, noting when things arrived."""

    def __init__(self, server, body, path="/v1/chat/completions", key=...):
        super().__init__(daemon=True)
        self.server, self.body, self.path, self.key = server, body, path, key
        self.events = []  # (t, kind, payload)
        self.status = None
        self.headers = {}
        self.error = None
        self.first_data = threading.Event()
        self.t0 = None

    def run(self):
        self.t0 = time.monotonic()
        try:
            s = self.server.stream(self.path, self.body, key=self.key, timeout=120)
            self.status, self.headers = s.status, s.headers
            if s.status != 200:
                self.body_bytes = s.resp.read()
                return
            for kind, payload in s.events():
                self.events.append((time.monotonic() - self.t0, kind, payload))
                if kind == "data":
                    self.first_data.set()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.first_data.set()

    def chunks(self):
        return data_events([(k, p) for _, k, p in self.events])

    def first_token_time(self):
        for t, kind, p in self.events:
            if kind == "data" and p != "[DONE]":
                for ch in json.loads(p).get("choices", []):
                    d = ch.get("delta", {})
                    if d.get("content") or d.get("reasoning_content"):
                        return t
        return None


# --- disconnects ------------------------------------------------------------------

def test_client_disconnect_cancels(server):
    before = server.metrics()
    s = server.stream("/v1/chat/completions", chat("hi", max_tokens=LONG, temperature=0.8, seed=1,
                                                   ignore_eos=True, stream=True))
    assert s.status == 200
    seen = 0
    for kind, _ in s.events():
        if kind == "data":
            seen += 1
            if seen == 3:
                break
    s.close()
    running = poll(lambda: metric(server.metrics(), "r1d_num_requests_running") == 0, 10)
    assert running, "r1d_num_requests_running did not return to 0 within 10 s of the disconnect"
    after = server.metrics()
    assert metric(after, "r1d_num_requests_waiting") == 0
    generated = metric(after, "r1d_generation_tokens_total") - metric(before, "r1d_generation_tokens_total")
    assert generated < LONG, f"{generated} tokens generated: the request ran to the end after the client left"
    # the server is fine afterwards
    r = server.post("/v1/chat/completions", chat("hi", max_tokens=2))
    assert r.status == 200


# --- 64 concurrent streams ------------------------------------------------------------

def test_64_concurrent_streams(server):
    client = server.async_client()

    def kw(i):
        return dict(model=MODEL_ID, messages=[{"role": "user", "content": f"request number {i}"}],
                    max_tokens=32, temperature=0.8, seed=1000 + i,
                    extra_body={"ignore_eos": True, "thinking_budget": 8 + i % 8})

    async def one_stream(i):
        content, reasoning, finish = "", "", []
        stream = await client.chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                      **kw(i))
        usage = None
        async for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for ch in chunk.choices:
                content += ch.delta.content or ""
                r = getattr(ch.delta, "reasoning_content", None)
                if r is None and ch.delta.model_extra:
                    r = ch.delta.model_extra.get("reasoning_content")
                reasoning += r or ""
                if ch.finish_reason:
                    finish.append(ch.finish_reason)
        return content, reasoning, finish, usage

    async def one_full(i):
        r = await client.chat.completions.create(**kw(i))
        m = r.choices[0].message
        rc = getattr(m, "reasoning_content", None)
        if rc is None and m.model_extra:
            rc = m.model_extra.get("reasoning_content")
        return m.content or "", rc or ""

    async def main():
        full = await asyncio.gather(*[one_full(i) for i in range(64)])
        streamed = await asyncio.gather(*[one_stream(i) for i in range(64)])
        await client.close()
        return full, streamed

    t0 = time.monotonic()
    full, streamed = asyncio.run(main())
    for i, ((c, r), (sc, sr, fin, usage)) in enumerate(zip(full, streamed)):
        assert fin == ["length"], (i, fin)
        assert usage is not None and usage.completion_tokens == 32, (i, usage)
        assert (sc, sr) == (c, r), f"request {i}: streamed result differs from the non-stream one"
    assert time.monotonic() - t0 < 120
    assert poll(lambda: metric(server.metrics(), "r1d_num_requests_running") == 0, 10)


# --- queue limits and keep-alive -----------------------------------------------------------

def test_queue_full_429_and_keepalive(start_server):
    s = start_server(["--max-num-seqs", 1, "--max-queued", 5, "--keepalive", 1, "--threads", 1])
    body = chat("hi", max_tokens=LONG, temperature=0.8, seed=3, ignore_eos=True, stream=True)
    first = StreamThread(s, body)
    first.start()
    assert first.first_data.wait(30)
    threads = [StreamThread(s, dict(body, seed=4 + i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in [first] + threads:
        t.join(120)
        assert not t.is_alive()
        assert t.error is None, t.error
    statuses = [t.status for t in threads]
    assert statuses.count(429) >= 3, statuses  # 1 running, at most 5 waiting
    assert statuses.count(200) >= 1, statuses
    for t in threads:
        if t.status == 429:
            assert t.headers.get("retry-after", "").strip().isdigit(), t.headers
            from e2e_util import Resp
            assert_error(Resp(429, t.headers, t.body_bytes), 429)
    ok = [first] + [t for t in threads if t.status == 200]
    for t in ok:
        j = join_stream(t.chunks())
        assert j[0]["finish_reason"] == "length"
    # the request that waited longest got keep-alive comments while it waited
    waited = max(ok, key=lambda t: t.first_token_time() or 0)
    wait = waited.first_token_time()
    assert wait is not None
    # --keepalive 1: a wait of 1.5 s must hold a keep-alive (2.5 s here was a
    # margin that a fast run missed by 10 ms)
    assert wait >= 1.5, f"the longest wait was only {wait:.2f} s: too short to see keep-alives (server too fast?)"
    comments = [(t, p) for t, k, p in waited.events if k == "comment"]
    assert any(p == "keep-alive" and t < wait for t, p in comments), (wait, comments[:5])
    m = s.metrics()
    assert metric(m, "r1d_num_requests_running") == 0 and metric(m, "r1d_num_requests_waiting") == 0
    assert any('code="429"' in k for k in m if k.startswith("r1d_requests_total{")), sorted(m)[:40]
    assert s.stop() == 0


# --- SIGTERM --------------------------------------------------------------------------

def test_sigterm_drains_streams_then_exits_0(start_server):
    s = start_server(["--drain-timeout", 120, "--threads", 1])
    body = chat("hi", max_tokens=LONG, temperature=0.8, ignore_eos=True, stream=True,
                stream_options={"include_usage": True})
    threads = [StreamThread(s, dict(body, seed=i)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        assert t.first_data.wait(30)
    s.signal(signal.SIGTERM)

    def refused():
        try:
            r = s.get("/health", timeout=5)
            return r.status == 503
        except OSError:  # refused or reset: not accepting any more
            return True

    deadline = time.monotonic() + 5
    while not refused():
        assert time.monotonic() < deadline, "still serving new requests 5 s after SIGTERM"
        time.sleep(0.02)
    streaming = any(t.is_alive() for t in threads)
    for t in threads:
        t.join(60)
        assert not t.is_alive()
        assert t.error is None, t.error
        chunks = t.chunks()  # ends with [DONE]
        assert "usage" in chunks[-1], (chunks[-1], s.stderr_tail())
        assert chunks[-1]["usage"]["completion_tokens"] == LONG, chunks[-1]
        assert join_stream(chunks[:-1])[0]["finish_reason"] == "length"
    rc = s.proc.wait(120)
    assert rc == 0, s.stderr_tail()
    assert streaming, "the streams had all finished before new connections were refused"


# --- systemd notify --------------------------------------------------------------------

class NotifySocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="r1d-notify-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.msgs = []  # (t, line)
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode(errors="replace").split("\n"):
                if line:
                    self.msgs.append((now, line))

    def lines(self):
        return [l for _, l in self.msgs]

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def _notify_env(ns, **extra):
    env = {"NOTIFY_SOCKET": ns.path}
    env.update(extra)
    return env


def test_systemd_notify_ready_watchdog_stopping(start_server, monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    ns = NotifySocket()
    try:
        s = start_server([], env=_notify_env(ns, WATCHDOG_USEC="200000"), wait_ready=False)
        assert poll(lambda: "READY=1" in ns.lines(), 30), ns.lines()
        # READY means serving
        assert s.get("/health").status == 200
        t_ready = time.monotonic()
        time.sleep(1.0)
        pings = [t for t, l in ns.msgs if l == "WATCHDOG=1" and t >= t_ready]
        assert len(pings) >= 4, f"{len(pings)} WATCHDOG=1 in 1 s with WATCHDOG_USEC=200000 (want every <=100 ms)"
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 0.2, gaps
        assert "STOPPING=1" not in ns.lines()
        s.signal(signal.SIGTERM)
        assert s.proc.wait(30) == 0
        assert "STOPPING=1" in ns.lines(), ns.lines()
        lines = ns.lines()
        assert lines.index("READY=1") < lines.index("STOPPING=1")
    finally:
        ns.close()


def test_systemd_watchdog_for_another_pid_is_ignored(start_server):
    ns = NotifySocket()
    try:
        s = start_server([], env=_notify_env(ns, WATCHDOG_USEC="200000", WATCHDOG_PID="1"), wait_ready=False)
        assert poll(lambda: "READY=1" in ns.lines(), 30), ns.lines()
        time.sleep(0.6)
        assert "WATCHDOG=1" not in ns.lines(), ns.lines()
        assert s.stop() == 0
    finally:
        ns.close()


# --- keys ---------------------------------------------------------------------------

KEY_A = "reload-key-A-0123456789abcdef"
KEY_B = "reload-key-B-0123456789abcdef"


def test_sighup_reloads_key_file(start_server, tmp_path):
    f = tmp_path / "keys"
    f.write_text(KEY_A + "\n")
    s = start_server(["--api-key-file", f], api_key=KEY_A)

    def status(key):
        return s.get("/v1/models", key=key).status

    assert status(KEY_A) == 200
    assert status(KEY_B) == 401

    def rewrite(text):
        tmp = tmp_path / "keys.new"
        tmp.write_text(text)
        os.replace(tmp, f)
        s.signal(signal.SIGHUP)

    rewrite(f"{KEY_A}\n{KEY_B}\n")
    assert poll(lambda: status(KEY_B) == 200, 5), "a key added to the file does not work after SIGHUP"
    assert status(KEY_A) == 200
    rewrite(f"# only B now\n{KEY_B}\n")
    assert poll(lambda: status(KEY_A) == 401, 5), "a key removed from the file still works after SIGHUP"
    assert status(KEY_B) == 200
    # a bad file is refused and the old keys stay
    rewrite("short\n")
    time.sleep(0.5)
    assert s.proc.poll() is None, s.stderr_tail()
    assert status(KEY_B) == 200
    assert status(KEY_A) == 401
    assert KEY_A not in "\n".join(s.lines) and KEY_B not in "\n".join(s.lines)
    assert s.stop() == 0


def test_keys_from_environment(start_server):
    s = start_server([], env={"R1D_API_KEYS": f"{KEY_A},{KEY_B}"}, api_key=KEY_A)
    assert s.get("/v1/models", key=KEY_A).status == 200
    assert s.get("/v1/models", key=KEY_B).status == 200
    assert_error(s.get("/v1/models", key=None), 401, type_="authentication_error")
    assert_error(s.get("/v1/models", key="reload-key-C-0123456789abcdef"), 401, type_="authentication_error")
    assert s.stop() == 0


# --- renaming flags -------------------------------------------------------------------------

def test_reasoning_field_served_name_and_max_model_len(start_server, tiny_model):
    s = start_server(["--reasoning-field", "reasoning", "--served-model-name", "my-r1",
                      "--max-model-len", 512])
    models = s.get("/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["my-r1"]
    assert models[0]["max_model_len"] == 512
    assert_error(s.post("/v1/chat/completions", chat("hi")), 404, code="model_not_found")
    body = dict(chat("hi", max_tokens=20, temperature=0.8, seed=2, ignore_eos=True, thinking_budget=6),
                model="my-r1")
    r = s.post("/v1/chat/completions", body)
    assert r.status == 200, r
    m = r.json()["choices"][0]["message"]
    assert "reasoning_content" not in m, m
    assert isinstance(m["reasoning"], str) and m["reasoning"], m
    assert m["content"], m
    joined = join_stream(data_events(s.stream("/v1/chat/completions", dict(body, stream=True)).read_all()),
                         reasoning_field="reasoning")
    assert (joined[0]["content"], joined[0]["reasoning"]) == (m["content"], m["reasoning"])
    # both names are accepted on input
    hist = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo", "reasoning": "x"},
            {"role": "user", "content": "again"}]
    assert s.post("/v1/chat/completions", dict(body, messages=hist, max_tokens=2)).status == 200
    # --max-model-len is the limit requests are checked against
    err = assert_error(s.post("/v1/chat/completions", dict(body, messages=[{"role": "user", "content": "x" * 600}])),
                       400, code="context_length_exceeded")
    assert "512" in err["message"], err
    assert s.tokenize(prompt="abc")["max_model_len"] == 512
    assert s.get("/version").json()["model"] == "my-r1"
    assert s.stop() == 0


@pytest.mark.parametrize("flag,value", [("--reasoning-field", "thoughts"), ("--max-num-seqs", "0"),
                                        ("--port", "70000")])
def test_bad_flags_fail_at_start(tiny_model, flag, value):
    import subprocess
    from e2e_util import R1D
    p = subprocess.run([R1D, "serve", "--model", str(tiny_model), "--host", "127.0.0.1", "--port", "0",
                        flag, value], capture_output=True, timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr[-500:])
    assert flag.lstrip("-").split("-")[0] in p.stderr.decode(errors="replace"), p.stderr[-500:]
