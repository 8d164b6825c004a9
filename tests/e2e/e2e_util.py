"""Helpers of the end-to-end tests of `r1d serve`: the binary, a tiny
random model, a server process that is started with --port 0 (the port is
read from its {"event":"listening"} stderr line), raw HTTP and SSE helpers
(stdlib http.client, so the bytes on the wire are checked as they are) and
the openai SDK client.

One server (session fixture `server`) serves most tests; tests that need
other flags start their own with the `start_server` factory fixture."""
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[2]
R1D = os.environ.get("R1D_BIN", str(ROOT / "build" / "r1d"))
SHARED = Path(os.environ.get("R1D_SHARED", ROOT.parent / "shared"))

API_KEY = "e2e-public-key-0123456789abcdef"
ADMIN_KEY = "e2e-admin-key-fedcba9876543210"
MODEL_ID = "tiny"  # the basename of the model folder
CONTEXT = 2048     # the tiny preset's max_position_embeddings
START_TIMEOUT = 60


def key_id(key):
    """How the server names a key in its logs: "key-" + 8 hex of SHA-256."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"not JSON ({e}): {self.body[:500]!r}")

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self):
        return f"<Resp {self.status} {self.body[:300]!r}>"


class Stream:
    """An SSE response read incrementally: `events()` yields ("data", str)
    and ("comment", str) items; `close()` drops the connection."""

    def __init__(self, conn, sock, resp):
        self.conn = conn
        self.sock = sock
        self.resp = resp
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}

    def events(self):
        while True:
            line = self.resp.readline()
            if not line:
                return
            line = line.decode("utf-8").rstrip("\r\n")
            if line.startswith("data:"):
                yield ("data", line[5:].lstrip(" "))
            elif line.startswith(":"):
                yield ("comment", line[1:].strip())
            elif line == "":
                continue
            else:
                yield ("other", line)

    def read_all(self):
        return list(self.events())

    def close(self):
        """Drops the connection at once (as a client that goes away)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.resp.close()
        self.conn.close()


def data_events(events):
    """The data payloads of an SSE event list; asserts the stream ends with
    exactly one `data: [DONE]` and returns the JSON chunks before it."""
    data = [d for kind, d in events if kind == "data"]
    assert data, f"no data events: {events[:5]}"
    assert data[-1] == "[DONE]", f"stream does not end with [DONE]: {data[-3:]}"
    assert data.count("[DONE]") == 1
    return [json.loads(d) for d in data[:-1]]


class Server:
    """One `r1d serve` process."""

    def __init__(self, model, args=(), env=None, api_key=None, admin_key=None):
        self.model = Path(model)
        self.args = [str(a) for a in args]
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.api_key = api_key
        self.admin_key = admin_key
        self.lines = []    # stderr lines (str)
        self.events = []   # the ones that parse as JSON objects
        self.cond = threading.Condition()
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"

    # --- process ------------------------------------------------------------
    def start(self, wait_ready=True):
        cmd = [R1D, "serve", "--model", str(self.model), "--host", "127.0.0.1",
               "--port", "0"] + self.args
        if "--threads" not in self.args:
            cmd += ["--threads", "2"]
        if "--data-dir" not in self.args:
            # each server logs into its own fresh database
            self.data_dir = tempfile.mkdtemp(prefix="r1d-e2e-")
            self.own_data_dir = True
            cmd += ["--data-dir", self.data_dir]
        else:
            self.data_dir = self.args[self.args.index("--data-dir") + 1]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env)
        threading.Thread(target=self._drain, args=(self.proc.stderr, True), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stdout, False), daemon=True).start()
        ev = self.wait_event(lambda e: e.get("event") == "listening", START_TIMEOUT)
        assert ev.get("host") == "127.0.0.1", ev
        self.port = int(ev["port"])
        assert self.port > 0, ev
        if wait_ready:
            self.wait_ready()
        return self

    def _drain(self, pipe, is_err):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self.cond:
                if is_err:
                    self.lines.append(line)
                    try:
                        obj = json.loads(line)
                        if isinstance(obj, dict):
                            self.events.append(obj)
                    except ValueError:
                        pass
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_event(self, pred, timeout, start=0):
        """Waits for a stderr JSON line (from index `start` of self.events) that
        satisfies pred; fails with the server's stderr on timeout or exit."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events[start:]:
                    if pred(e):
                        return e
                if self.proc.poll() is not None:
                    # let the drain thread finish reading
                    self.cond.wait(0.2)
                    for e in self.events[start:]:
                        if pred(e):
                            return e
                    raise AssertionError(
                        f"r1d serve exited with {self.proc.returncode} ({' '.join(self.cmd)}):\n"
                        + self.stderr_tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for a log event; stderr:\n"
                                         + self.stderr_tail())
                self.cond.wait(min(left, 0.2))

    def stderr_tail(self, n=40):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "r1d serve died:\n" + self.stderr_tail()
            try:
                last = self.get("/ready")
                if last.status == 200:
                    return
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"/ready never 200: {last}\n" + self.stderr_tail())

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM, then wait; returns the exit status (kills on timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("r1d serve did not exit within %ss of SIGTERM:\n%s"
                                 % (timeout, self.stderr_tail()))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        """Kills the server and removes the data dir it was given by start()."""
        self.kill()
        if getattr(self, "own_data_dir", False):
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- HTTP -----------------------------------------------------------------
    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def _headers(self, key, headers, body):
        h = {}
        if body is not None:
            h["Content-Type"] = "application/json"
        key = self.api_key if key is ... else key
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        h.update(headers or {})
        return h

    @staticmethod
    def _encode(body):
        if body is None or isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode()
        return json.dumps(body).encode()

    def request(self, method, path, body=None, key=..., headers=None, timeout=120):
        """One request on a fresh connection; key=... uses the server's API key,
        key=None sends no Authorization header."""
        data = self._encode(body)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            try:
                conn.request(method, path, body=data, headers=self._headers(key, headers, data))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (413) before reading the whole body
            r = conn.getresponse()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def get(self, path, key=..., **kw):
        return self.request("GET", path, key=key, **kw)

    def post(self, path, body, key=..., **kw):
        return self.request("POST", path, body, key=key, **kw)

    def stream(self, path, body, key=..., timeout=120):
        """Starts a streaming POST; returns a Stream (status and headers read)."""
        data = self._encode(body)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.request("POST", path, body=data, headers=self._headers(key, None, data))
        sock = conn.sock
        return Stream(conn, sock, conn.getresponse())

    def client(self, key=..., **kw):
        key = self.api_key if key is ... else key
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key or "none",
                             max_retries=0, timeout=kw.pop("timeout", 120), **kw)

    def async_client(self, key=..., **kw):
        key = self.api_key if key is ... else key
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key or "none",
                                  max_retries=0, timeout=kw.pop("timeout", 120), **kw)

    # --- helpers on top ---------------------------------------------------------
    def metrics(self):
        """/metrics parsed: {"name{labels}": value} (labels as the server wrote them)
        and {"name": sum over label sets}."""
        r = self.get("/metrics")
        assert r.status == 200, r
        return parse_metrics(r.text)

    def tokenize(self, **body):
        r = self.post("/tokenize", body)
        assert r.status == 200, r
        return r.json()

    def detokenize(self, tokens):
        r = self.post("/detokenize", {"tokens": tokens})
        assert r.status == 200, r
        return r.json()["prompt"]

    def request_events(self, route=None):
        with self.cond:
            return [e for e in self.events if e.get("event") == "request"
                    and (route is None or e.get("route") == route)]


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        try:
            v = float(value)
        except ValueError:
            raise AssertionError(f"bad metrics line: {line!r}")
        out[name_labels] = v
        base = name_labels.split("{", 1)[0]
        if "{" in name_labels:
            out.setdefault(base + "{*}", 0.0)
            out[base + "{*}"] += v
    return out


def metric(m, name):
    """The value of an unlabelled metric, or the sum over its label sets."""
    if name in m:
        return m[name]
    if name + "{*}" in m:
        return m[name + "{*}"]
    raise AssertionError(f"metric {name} missing; have {sorted(m)[:60]}")


def assert_error(r, status, type_=None, code=None, param=None, message_has=()):
    """An OpenAI-shaped error with this status; returns the error object."""
    assert r.status == status, (r.status, r.body[:500])
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    if type_ is not None:
        assert err["type"] == type_, err
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    for needle in message_has:
        assert needle in err["message"], (needle, err)
    return err


def field(obj, name):
    """A field of an openai SDK object, also when the SDK does not declare it
    (reasoning_content arrives as an extra field)."""
    v = getattr(obj, name, None)
    if v is None:
        extra = getattr(obj, "model_extra", None) or {}
        v = extra.get(name)
    return v


def chat(user, **kw):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": user}]}
    body.update(kw)
    return body


def join_stream(chunks, reasoning_field="reasoning_content"):
    """Joins raw chat.completion.chunk dicts per choice index: returns
    {index: {"content", "reasoning", "finish_reason", "n_finish"}} and checks
    the per-chunk shapes of API.md on the way."""
    out = {}
    for c in chunks:
        assert c["object"] == "chat.completion.chunk", c
        assert c["id"].startswith("chatcmpl-"), c
        for ch in c["choices"]:
            i = ch["index"]
            d = ch["delta"]
            st = out.setdefault(i, {"content": "", "reasoning": "", "finish_reason": None,
                                    "n_finish": 0, "first": None})
            assert st["n_finish"] == 0, f"delta after the finish chunk of choice {i}: {c}"
            if st["first"] is None:
                st["first"] = d
                assert d == {"role": "assistant", "content": None, reasoning_field: ""}, d
                assert ch["finish_reason"] is None, ch
                continue
            if ch["finish_reason"] is not None:
                assert d == {}, ch
                assert ch["finish_reason"] in ("stop", "length"), ch
                st["finish_reason"] = ch["finish_reason"]
                st["n_finish"] += 1
                continue
            other = "reasoning" if reasoning_field == "reasoning_content" else "reasoning_content"
            assert other not in d, f"both reasoning field names: {d}"
            if d.get("content") is not None:
                assert d.get(reasoning_field) is None, d
                assert isinstance(d["content"], str)
                st["content"] += d["content"]
            else:
                assert isinstance(d.get(reasoning_field), str), d
                st["reasoning"] += d[reasoning_field]
    for i, st in out.items():
        assert st["n_finish"] == 1, f"choice {i} has {st['n_finish']} finish chunks"
    return out
