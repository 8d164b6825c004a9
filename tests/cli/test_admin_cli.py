"""`r1d admin ...`: the admin client against a real `r1d serve` on a tiny
random model (--port 0; the port comes from the server's {"event":
"listening"} stderr line). Tasks added with their bad lines reported by
number, eval and GRPO jobs started and watched (JSON lines when stderr is
not a terminal, a progress bar when it is), listed, shown and cancelled, the
checkpoints registry, hot swaps by path and by registered version and their
rollback, the trainer's schedule, and the one-line errors: the server's
message with its HTTP status (exit 2 for 4xx), an unreachable server (exit
1), bad arguments (exit 2), a wrong admin key (401/403)."""
import json
import os
import pty
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import R1D, run

START_TIMEOUT = 60
ADMIN_KEY = "cli-admin-key-0123456789abcdef"
API_KEY = "cli-public-key-fedcba9876543210"

# a short GRPO job: 2 steps of 2 prompts x 4 completions of 8 tokens
GRPO = ["--set", "num_generations=4", "--set", "prompts_per_step=2",
        "--set", "max_completion_length=8", "--set", "max_steps=2",
        "--set", "learning_rate=1e-3", "--swap", "never"]
# an eval job that takes a second: one 8-token sample per held-out task
EVAL = ["--set", "eval_samples=1", "--set", "max_completion_length=8"]


def tasks_jsonl(n_train=16, n_eval=8):
    return "".join(json.dumps({"id": f"r{i}", "prompt": f"Say a number {i}",
                               "checker": {"type": "regex", "pattern": "[0-9]"},
                               "split": "eval" if i >= n_train else "train"}) + "\n"
                   for i in range(n_train + n_eval))


class Server:
    """One `r1d serve` process on 127.0.0.1 and a free port."""

    def __init__(self, model, data_dir, args=()):
        self.cmd = [R1D, "serve", "--model", str(model), "--host", "127.0.0.1", "--port", "0",
                    "--threads", "2", "--data-dir", str(data_dir)] + [str(a) for a in args]
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = self._wait_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _drain(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _wait_port(self):
        deadline = time.monotonic() + START_TIMEOUT
        with self.cond:
            while True:
                for line in self.lines:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(ev, dict) and ev.get("event") == "listening":
                        return int(ev["port"])
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("r1d serve did not start:\n" + "\n".join(self.lines[-30:]))
                self.cond.wait(0.2)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def admin(srv, *args, key=None, env=None, cwd=None, stdin=None):
    """`r1d admin --url SRV ARGS` with R1D_URL and R1D_ADMIN_KEY unset unless
    env gives them; srv None leaves --url out."""
    e = {k: v for k, v in os.environ.items() if k not in ("R1D_URL", "R1D_ADMIN_KEY")}
    e.update(env or {})
    cmd = [R1D, "admin"]
    if srv is not None:
        cmd += ["--url", srv.url if hasattr(srv, "url") else srv]
    if key is not None:
        cmd += ["--admin-key", key]
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, timeout=300, env=e, cwd=cwd,
                       input=stdin.encode() if stdin is not None else None)
    p.out = p.stdout.decode("utf-8", errors="replace")
    p.err = p.stderr.decode("utf-8", errors="replace")
    return p


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.out}\nstderr: {p.err}"
    return p


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("admin-models")
    for seed in (1, 2):
        run(["model", "init", "--arch", "qwen2", "--preset", "tiny", "--seed", str(seed),
             "--out", str(d / f"seed{seed}")], check=True)
    return d / "seed1", d / "seed2"


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    """A loopback server without keys (admin routes open), 24 tasks added
    with `r1d admin tasks add`: 16 train, 8 eval."""
    d = tmp_path_factory.mktemp("admin-server")
    srv = Server(models[0], d / "data")
    try:
        path = d / "tasks.jsonl"
        path.write_text(tasks_jsonl(), encoding="utf-8")
        srv.added = ok(admin(srv, "tasks", "add", path))
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def grpo_job(server):
    """The GRPO job of the task, watched to its end: (process, job id)."""
    p = ok(admin(server, "jobs", "start", "--type", "grpo", *GRPO, "--watch"))
    return p, p.out.splitlines()[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- arguments (no server) --------------------------------------------------

def test_help_and_bad_arguments():
    h = ok(run(["help", "admin"]))
    for word in ("tasks add", "jobs start", "jobs watch", "checkpoints", "weights swap",
                 "weights rollback", "trainer set", "--url", "--admin-key", "--json"):
        assert word in h.out, word
    assert "admin" in ok(run(["help"])).out
    assert ok(admin(None, "jobs", "start", "--help")).out == h.out
    url = f"http://127.0.0.1:{free_port()}"
    cases = [
        ([], "expected tasks, jobs"),
        (["bogus"], "unknown group 'bogus'"),
        (["jobs"], "expected an action"),
        (["jobs", "bogus"], "unknown action 'bogus'"),
        (["jobs", "list", "--bogus"], "unknown option '--bogus'"),
        (["jobs", "show"], "expected one job ID"),
        (["jobs", "start"], "--type grpo|sft|eval is required"),
        (["jobs", "start", "--type", "distill"], "--type: expected grpo, sft or eval"),
        (["jobs", "start", "--type", "grpo", "--swap", "maybe"], "--swap: expected auto or never"),
        (["jobs", "start", "--type", "grpo", "--min-improvement", "2"], "--min-improvement"),
        (["jobs", "start", "--type", "grpo", "--set", "novalue"], "expected KEY=VALUE"),
        (["jobs", "start", "--type", "grpo", "--set", "a..b=1"], "a..b"),
        (["jobs", "start", "--type", "grpo", "--set", "a=1", "--set", "a.b=2"], "not an object"),
        (["jobs", "start", "--type", "grpo", "--config", "/nonexistent.json"], "/nonexistent.json"),
        (["tasks", "add"], "expected one FILE"),
        (["tasks", "add", "/nonexistent.jsonl"], "/nonexistent.jsonl"),
        (["weights", "swap"], "give one of --path DIR or --version"),
        (["weights", "swap", "--path", "a", "--version", "b"], "give one of"),
        (["weights", "rollback", "--path", "x"], "unknown option"),
        (["trainer", "set"], "give --enabled"),
        (["trainer", "set", "--enabled", "yes"], "--enabled: expected true or false"),
        (["trainer", "set", "--interval", "0"], "--interval"),
        (["trainer", "set", "--min-new-tasks", "-1"], "--min-new-tasks"),
        (["checkpoints", "--limit", "0"], "--limit"),
    ]
    for args, msg in cases:
        p = admin(url, *args)
        assert p.returncode == 2, (args, p.returncode, p.err)
        assert p.err.startswith("r1d: ") and p.err.count("\n") == 1, (args, p.err)
        assert msg in p.err, (args, p.err)
    p = admin("ftp://127.0.0.1:1", "jobs", "list")
    assert p.returncode == 2 and "--url: expected http://" in p.err
    p = admin(None, "jobs", "list", "--url")
    assert p.returncode == 2 and "--url needs a value" in p.err


def test_an_unreachable_server_is_exit_1():
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["jobs", "list"], ["weights"], ["trainer"]):
        p = admin(url, *args)
        assert p.returncode == 1, p.err
        assert p.err.startswith(f"r1d: cannot reach {url}: ") and p.err.count("\n") == 1, p.err
    # R1D_URL is the default --url
    p = admin(None, "jobs", "list", env={"R1D_URL": url})
    assert p.returncode == 1 and f"cannot reach {url}" in p.err


# ---- tasks ------------------------------------------------------------------

def test_tasks_add_reports_bad_lines_by_number(server, tmp_path):
    assert server.added.out == "added 24 tasks, 0 bad lines\n", server.added.out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x1", "prompt": "Say 1", "checker": {"type": "regex", "pattern": "1"}}\n'
                   "not json\n"
                   '{"id": "r3", "prompt": "taken", "checker": {"type": "regex", "pattern": "1"}}\n'
                   "\n"
                   '{"id": "x2", "prompt": "no checker"}\n', encoding="utf-8")
    p = admin(server, "tasks", "add", bad)
    assert p.returncode == 2, p.err
    assert p.out == "added 1 tasks, 3 bad lines\n"
    lines = p.err.splitlines()
    assert len(lines) == 3, p.err
    assert lines[0].startswith(f"r1d: {bad}:2: ") and "JSON" in lines[0]
    assert lines[1].startswith(f"r1d: {bad}:3: ") and "r3" in lines[1]
    assert lines[2].startswith(f"r1d: {bad}:5: ") and "checker" in lines[2]
    # --strict stores nothing when a line is bad (the server's 400 lists them)
    bad.write_text('{"id": "x3", "prompt": "Say 1", "checker": {"type": "regex", "pattern": "1"}}\n'
                   "not json\n", encoding="utf-8")
    p = admin(server, "tasks", "add", bad, "--strict")
    assert p.returncode == 2
    assert p.out == "added 0 tasks, 1 bad lines (strict: nothing stored)\n"
    assert p.err.startswith(f"r1d: {bad}:2: ")
    # --json: the server's answer as it came
    p = admin(server, "--json", "tasks", "add", bad, "--strict")
    assert p.returncode == 2
    ans = json.loads(p.out)
    assert ans["added"] == 0 and [e["line"] for e in ans["errors"]] == [2]
    # x3 was not stored: adding it alone now works, from stdin
    p = ok(admin(server, "tasks", "add", "-", "--json",
                 stdin=bad.read_text(encoding="utf-8").splitlines()[0] + "\n"))
    assert json.loads(p.out)["ids"] == ["x3"]
    # nothing good at all: still the per-line report, exit 2
    p = admin(server, "tasks", "add", "-", stdin="nope\n")
    assert p.returncode == 2 and p.out == "added 0 tasks, 1 bad lines\n"
    assert p.err.startswith("r1d: stdin:1: ")


# ---- jobs -------------------------------------------------------------------

def test_an_eval_job_watched(server):
    p = ok(admin(server, "jobs", "start", "--type", "eval", *EVAL, "--watch"))
    out = p.out.splitlines()
    jid = out[0]
    assert jid.startswith("job-")
    assert out[1].startswith(f"{jid} (eval) succeeded")
    assert out[2].startswith("eval pass@1: ") and "(8 tasks, k=1)" in out[2], p.out
    # stderr is not a terminal: one JSON line per change, the last one final
    lines = json_lines(p.err)
    assert lines and all(x["id"] == jid for x in lines)
    assert lines[-1]["status"] == "succeeded"
    assert lines[-1]["eval"]["before"]["tasks"] == 8
    assert len({json.dumps(x, sort_keys=True) for x in lines}) == len(lines)  # only changes


def test_a_grpo_job_watched(grpo_job):
    p, jid = grpo_job
    out = p.out.splitlines()
    assert out[1].startswith(f"{jid} (grpo) succeeded: step 2/2"), p.out
    assert out[2].startswith("eval pass@1: ") and " -> " in out[2] and "(8 tasks, k=4)" in out[2]
    assert out[3].startswith("decision: passed") or out[3].startswith("decision: rejected"), p.out
    assert out[4].startswith("candidate: ckpt-"), p.out
    lines = json_lines(p.err)
    assert lines[-1]["status"] == "succeeded"
    assert lines[-1]["progress"] == {"step": 2, "total_steps": 2}
    assert lines[-1]["metrics"]["step"] == 2 and "kl" in lines[-1]["metrics"]
    assert lines[-1]["eval"]["after"]["step"] == 2


def test_jobs_list_show_cancel(server, grpo_job):
    _, jid = grpo_job
    p = ok(admin(server, "jobs", "list"))
    rows = [line.split() for line in p.out.splitlines()]
    assert rows[0] == ["ID", "TYPE", "STATUS", "STEP", "DECISION"]
    mine = [r for r in rows if r[0] == jid]
    assert mine and mine[0][1:4] == ["grpo", "succeeded", "2/2"]
    assert mine[0][4] in ("passed", "rejected")
    assert any(r[1] == "eval" and r[3] == "-" and r[4] == "-" for r in rows[1:])
    listed = json.loads(ok(admin(server, "--json", "jobs", "list")).out)
    assert jid in [j["id"] for j in listed["data"]]
    p = ok(admin(server, "jobs", "show", jid))
    assert p.out.startswith(f"{jid} (grpo) succeeded")
    assert '"max_steps":2' in p.out and "swap: never" in p.out and "decision: " in p.out
    shown = json.loads(ok(admin(server, "jobs", "show", jid, "--json")).out)
    assert shown["id"] == jid and shown["config"]["learning_rate"] == 1e-3
    assert shown["swap"] == "never"
    # a finished job cannot be cancelled: the server's 409, exit 2
    p = admin(server, "jobs", "cancel", jid)
    assert p.returncode == 2
    assert p.err == f"r1d: HTTP 409: job {jid} already succeeded\n", p.err
    p = admin(server, "jobs", "show", "job-999")
    assert p.returncode == 2 and p.err == "r1d: HTTP 404: no such job\n"
    # a bad config value: the server's message and the field, exit 2
    p = admin(server, "jobs", "start", "--type", "grpo", "--set", "learning_rate=100")
    assert p.returncode == 2
    assert p.err.startswith("r1d: HTTP 400: config.learning_rate must be")
    assert p.err.endswith(" (param: config.learning_rate)\n")
    # dotted keys nest, strings stay strings: the server names the field
    p = admin(server, "jobs", "start", "--type", "grpo", "--set", "rewards.bogus=on")
    assert p.returncode == 2 and "bogus" in p.err and p.err.startswith("r1d: HTTP 400: ")


def test_a_running_job_cancelled_and_watched(server, tmp_path):
    cfg = tmp_path / "job.json"
    cfg.write_text(json.dumps({"num_generations": 4, "prompts_per_step": 2,
                               "max_completion_length": 8, "max_steps": 100000}))
    jid = ok(admin(server, "jobs", "start", "--type", "grpo", "--config", cfg,
                   "--set", "learning_rate=1e-3", "--swap", "never")).out.strip()
    deadline = time.monotonic() + 120
    while True:
        j = json.loads(ok(admin(server, "--json", "jobs", "show", jid)).out)
        if j["progress"]["step"] >= 1:
            break
        assert time.monotonic() < deadline, j
        time.sleep(0.1)
    assert j["config"]["max_steps"] == 100000 and j["config"]["learning_rate"] == 1e-3
    p = ok(admin(server, "jobs", "cancel", jid))
    assert p.out.startswith(f"job {jid} stops at its next step boundary"), p.out
    p = ok(admin(server, "jobs", "watch", jid))
    assert p.out.splitlines()[0].startswith(f"{jid} (grpo) cancelled at step "), p.out
    assert json_lines(p.err)[-1]["status"] == "cancelled"


def test_a_failed_job_is_exit_1(server):
    p = admin(server, "jobs", "start", "--type", "grpo", "--set", "max_completion_length=4000",
              "--set", "max_steps=1", "--watch")
    assert p.returncode == 1, p.err
    jid = p.out.splitlines()[0]
    assert f"{jid} (grpo) failed" in p.out
    assert f"r1d: job {jid} failed: " in p.err and "context" in p.err


def test_watch_draws_a_bar_on_a_terminal(server):
    """stderr a terminal: one line redrawn with \\r, ended by a newline."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("R1D_URL", "R1D_ADMIN_KEY")}
    args = [a.replace("max_steps=2", "max_steps=4") for a in GRPO]
    proc = subprocess.Popen([R1D, "admin", "--url", server.url, "jobs", "start", "--type", "grpo",
                             *args, "--watch"], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    tty = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            tty += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, (out, tty)
    text = tty.decode("utf-8", errors="replace")
    assert "\r" in text and text.endswith("\n"), text
    last = text.rstrip("\r\n").split("\r")[-1]
    assert "[####################] step 4/4  reward " in last, last
    assert "  acc " in last and "  kl " in last and "  eval " in last and " -> " in last, last
    assert not any(line.startswith("{") for line in text.split("\r")), text
    assert "(grpo) succeeded: step 4/4" in out


# ---- checkpoints and weights ---------------------------------------------------

def test_checkpoints_list_shows_the_candidate(server, grpo_job):
    shown = json.loads(ok(admin(server, "--json", "jobs", "show", grpo_job[1])).out)
    version = shown["result"]["registry_version"]
    p = ok(admin(server, "checkpoints", "list"))
    rows = [line.split() for line in p.out.splitlines()]
    assert rows[0] == ["VERSION", "STATUS", "KIND", "STEP", "PATH"]
    mine = [r for r in rows if r[0] == version]
    assert mine and mine[0][1:4] == ["rejected", "grpo", "2"], p.out
    assert mine[0][4] == shown["result"]["checkpoint"]
    assert ok(admin(server, "checkpoints")).out == p.out
    data = json.loads(ok(admin(server, "checkpoints", "--json", "--status", "rejected")).out)["data"]
    assert version in [c["version"] for c in data]
    assert all(c["status"] == "rejected" for c in data)
    p = admin(server, "checkpoints", "--status", "bogus")
    assert p.returncode == 2 and p.err.startswith("r1d: HTTP 400: ") and "(param: status)" in p.err


def test_weights_swap_show_rollback(server, models, grpo_job):
    w = json.loads(ok(admin(server, "weights", "--json")).out)
    live = w["live"]
    # a relative path is the client's: made absolute before it is sent
    p = ok(admin(server, "weights", "swap", "--path", models[1].name, cwd=models[1].parent))
    assert p.out.startswith(f"weight version {live} -> {live + 1} in "), p.out
    assert p.out.endswith(f" s (0 requests finishing on {live})\n"), p.out
    p = ok(admin(server, "weights"))
    lines = p.out.splitlines()
    assert lines[0].startswith(f"live: {live + 1}  previous: {live}  swaps: "), p.out
    assert lines[1].split() == ["VERSION", "STATE", "REQUESTS", "SOURCE"]
    rows = {r.split()[0]: r.split() for r in lines[2:]}
    assert rows[str(live + 1)][1] == "live" and rows[str(live + 1)][3] == str(models[1])
    assert rows[str(live)][1] == "previous"
    p = ok(admin(server, "weights", "rollback"))
    assert p.out.startswith(f"weight version {live + 1} -> {live} in "), p.out
    assert json.loads(ok(admin(server, "--json", "weights")).out)["live"] == live
    # by registered version: the GRPO job's candidate
    shown = json.loads(ok(admin(server, "--json", "jobs", "show", grpo_job[1])).out)
    p = ok(admin(server, "weights", "swap", "--version", shown["result"]["registry_version"],
                 "--abort-in-flight", "--json"))
    ans = json.loads(p.out)
    assert ans["old_weight_version"] == live and ans["new_weight_version"] == live + 2
    p = ok(admin(server, "weights", "rollback", "--abort-in-flight"))
    assert p.out.startswith(f"weight version {live + 2} -> {live} in ")
    # the server's refusals: exit 2 with its message and field
    p = admin(server, "weights", "swap", "--path", "/nonexistent/model")
    assert p.returncode == 2 and p.err.startswith("r1d: HTTP 400: ") and "(param: path)" in p.err
    p = admin(server, "weights", "swap", "--version", "ckpt-0000000000000000")
    assert p.returncode == 2 and p.err.startswith("r1d: HTTP 404: ") and "(param: version)" in p.err


# ---- trainer -------------------------------------------------------------------

def test_trainer_get_and_set(server, tmp_path):
    p = ok(admin(server, "trainer"))
    assert p.out.splitlines()[:3] == ["enabled: false", "interval: 3600 s", "min new tasks: 1"]
    job = tmp_path / "sched.json"
    job.write_text(json.dumps({"type": "grpo", "config": {"max_steps": 3}, "swap": "never"}))
    p = ok(admin(server, "trainer", "set", "--enabled", "false", "--interval", "120",
                 "--min-new-tasks", "5", "--job", job))
    lines = p.out.splitlines()
    assert lines[:3] == ["enabled: false", "interval: 120 s", "min new tasks: 5"], p.out
    assert json.loads(lines[3][len("job: "):]) == {"type": "grpo", "config": {"max_steps": 3},
                                                   "swap": "never"}
    got = json.loads(ok(admin(server, "--json", "trainer", "show")).out)
    assert got["interval_s"] == 120 and got["min_new_tasks"] == 5 and got["enabled"] is False
    job.write_text(json.dumps({"type": "nope"}))
    p = admin(server, "trainer", "set", "--job", job)
    assert p.returncode == 2 and p.err.startswith("r1d: HTTP 400: job.type must be"), p.err
    assert p.err.endswith("(param: job.type)\n")
    job.write_text("[1, 2]")
    p = admin(server, "trainer", "set", "--job", job)
    assert p.returncode == 2 and "expected a JSON object" in p.err


# ---- keys ----------------------------------------------------------------------

def test_admin_key(models, tmp_path):
    keys = tmp_path / "admin.keys"
    keys.write_text(ADMIN_KEY + "\n")
    api = tmp_path / "api.keys"
    api.write_text(API_KEY + "\n")
    srv = Server(models[0], tmp_path / "data", ["--admin-key-file", keys, "--api-key-file", api])
    try:
        p = admin(srv, "jobs", "list")
        assert p.returncode == 2
        assert p.err == "r1d: HTTP 401: missing admin key (Authorization: Bearer KEY)\n", p.err
        p = admin(srv, "trainer", key="wrong-key")
        assert p.returncode == 2 and p.err == "r1d: HTTP 401: invalid admin key\n", p.err
        p = admin(srv, "weights", key=API_KEY)
        assert p.returncode == 2 and p.err.startswith("r1d: HTTP 403: "), p.err
        p = admin(srv, "weights", key=ADMIN_KEY, env={"R1D_ADMIN_KEY": "wrong-key"})
        assert ok(p).out.startswith("live: 1  previous: -")
        p = ok(admin(None, "jobs", "list", env={"R1D_URL": srv.url, "R1D_ADMIN_KEY": ADMIN_KEY}))
        assert p.out.split() == ["ID", "TYPE", "STATUS", "STEP", "DECISION"]
        p = admin(srv, "--json", "jobs", "list")
        assert p.returncode == 2 and json.loads(p.out)["error"]["type"] == "authentication_error"
    finally:
        srv.stop()
