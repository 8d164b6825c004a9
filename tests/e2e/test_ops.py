"""/v1/models, /tokenize and /detokenize, /health, /ready, /version,
/metrics, the access log on stderr, and the admin route."""
import json
import re
import subprocess

from e2e_util import (API_KEY, CONTEXT, MODEL_ID, R1D, assert_error, chat, key_id, metric)


def test_models_sdk_and_raw(server, client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == [MODEL_ID]
    m = models.data[0]
    assert m.object == "model"
    assert isinstance(m.created, int) and m.created > 1_600_000_000
    assert m.owned_by
    r = server.get("/v1/models")
    assert r.status == 200
    j = r.json()
    assert j["object"] == "list"
    d = j["data"][0]
    assert d["max_model_len"] == CONTEXT
    assert "weight_version" in d


def test_tokenize_detokenize_round_trip(server):
    text = "Hello, wörld! 你好 <think>x</think> done"
    t = server.tokenize(prompt=text)
    assert t["count"] == len(t["tokens"]) > 0
    assert t["max_model_len"] == CONTEXT
    assert all(isinstance(i, int) for i in t["tokens"])
    assert server.detokenize(t["tokens"]) == text
    # the special tags are single tokens, as in the tokenizer
    assert len(server.tokenize(prompt="<think>")["tokens"]) == 1
    # same ids as the CLI tokenizer
    p = subprocess.run([R1D, "tokenize", "--model", str(server.model)], input=(json.dumps(text) + "\n").encode(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == t["tokens"]


def test_tokenize_messages_matches_cli_template(server):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    t = server.tokenize(messages=msgs, add_generation_prompt=True)
    rendered = subprocess.run([R1D, "template", "--model", str(server.model)],
                              input=(json.dumps(msgs) + "\n").encode(), capture_output=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    text = json.loads(rendered.stdout)
    assert text.endswith("<think>\n")
    ids = subprocess.run([R1D, "tokenize", "--model", str(server.model)],
                         input=(json.dumps(text) + "\n").encode(), capture_output=True, timeout=60)
    assert json.loads(ids.stdout) == t["tokens"]
    assert server.detokenize(t["tokens"]).endswith("<think>\n")
    no_gen = server.tokenize(messages=msgs, add_generation_prompt=False)
    assert no_gen["count"] < t["count"]
    # the chat usage counts the same prompt
    r = server.post("/v1/chat/completions", {"model": MODEL_ID, "messages": msgs, "max_tokens": 1})
    assert r.status == 200, r
    assert r.json()["usage"]["prompt_tokens"] == t["count"]


def test_tokenize_bad_requests(server):
    assert_error(server.post("/tokenize", {"prompt": 5}), 400, param="prompt")
    assert_error(server.post("/detokenize", {"tokens": "abc"}), 400, param="tokens")
    assert_error(server.post("/detokenize", {"tokens": [-1]}), 400, param="tokens")


def test_health_ready_version(server):
    r = server.get("/health")
    assert r.status == 200 and r.json() == {"status": "ok"}, r
    r = server.get("/ready")
    assert r.status == 200 and r.json() == {"status": "ready"}, r
    r = server.get("/version")
    assert r.status == 200, r
    v = r.json()
    assert set(v) >= {"version", "git", "backend", "model", "weight_version"}, v
    cli = subprocess.run([R1D, "version"], capture_output=True, timeout=30).stdout.decode()
    assert v["version"] in cli, (v, cli)
    assert v["model"] == MODEL_ID
    assert "cpu" in v["backend"].lower() or "cuda" in v["backend"].lower(), v


def test_metrics(server):
    before = server.metrics()
    r = server.post("/v1/chat/completions", chat("count me", max_tokens=11, temperature=0.0, ignore_eos=True))
    assert r.status == 200, r
    u = r.json()["usage"]
    raw = server.get("/metrics")
    assert raw.headers["content-type"].startswith("text/plain"), raw.headers
    text = raw.text
    after = server.metrics()
    for name in ["r1d_num_requests_running", "r1d_num_requests_waiting", "r1d_kv_cache_usage_ratio",
                 "r1d_generation_tokens_total", "r1d_prompt_tokens_total", "r1d_reasoning_tokens_total"]:
        metric(after, name)
        assert re.search(rf"^# TYPE {name} (counter|gauge)$", text, re.M), name
    assert re.search(r"^# TYPE r1d_time_to_first_token_seconds histogram$", text, re.M)
    assert re.search(r'^r1d_time_to_first_token_seconds_bucket\{[^}]*le="\+Inf"[^}]*\} \d', text, re.M)
    assert metric(after, "r1d_time_to_first_token_seconds_count") >= 1
    assert metric(after, "r1d_generation_tokens_total") - metric(before, "r1d_generation_tokens_total") >= 11
    assert metric(after, "r1d_prompt_tokens_total") - metric(before, "r1d_prompt_tokens_total") >= u["prompt_tokens"]
    assert 0.0 <= metric(after, "r1d_kv_cache_usage_ratio") <= 1.0
    lines = [l for l in text.splitlines() if l.startswith("r1d_requests_total{")]
    ok = [l for l in lines if 'route="/v1/chat/completions"' in l and 'code="200"' in l]
    assert ok, lines
    assert metric(after, "r1d_num_requests_running") == 0


def test_access_log(server):
    r = server.post("/v1/chat/completions", chat("log me", max_tokens=9, temperature=0.0, ignore_eos=True))
    assert r.status == 200
    usage = r.json()["usage"]
    ev = server.wait_event(lambda e: e.get("event") == "request" and e.get("route") == "/v1/chat/completions"
                           and e.get("completion_tokens") == 9 and e.get("prompt_tokens") == usage["prompt_tokens"],
                           10)
    assert ev["status"] == 200
    assert isinstance(ev["request_id"], str) and ev["request_id"]
    assert isinstance(ev["latency_ms"], (int, float)) and ev["latency_ms"] >= 0
    assert ev["key_id"] == key_id(API_KEY)
    # no line of the log contains a key
    assert all(API_KEY not in line for line in server.lines)
    # a refused request is logged too, without a key id
    server.get("/v1/models", key=None)
    server.wait_event(lambda e: e.get("event") == "request" and e.get("status") == 401, 10)


def test_admin_server_route(server):
    assert_error(server.get("/admin/v1/server", key=API_KEY), 403)
    assert_error(server.get("/admin/v1/server", key=None), 401, type_="authentication_error")
    r = server.get("/admin/v1/server", key=server.admin_key)
    assert r.status == 200, r
    j = r.json()
    blob = json.dumps(j)
    assert isinstance(j, dict) and j
    # the config it reports includes what we started it with, never a key
    assert "262144" in blob, j
    assert server.admin_key not in blob and API_KEY not in blob
