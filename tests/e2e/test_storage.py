"""Storage end to end: every answer (chat and completions, stream and not,
n > 1) is a record in the data dir that GET /admin/v1/interactions/{id}
returns with the request as sent and the text the client got; the
--log-interactions / --log-logprobs flags; POST /v1/feedback; the admin
task routes; paging through the interaction log; a full LMDB map (serving
goes on, /health and /metrics say so, feedback gets 503) and retention
by size (--retain-bytes) making room at the cap.

No test waits for a record: the server holds an answer's last bytes until
its record is committed, so a record must be readable as soon as the client
has the whole answer."""
import json
import subprocess

import pytest

from e2e_util import (ADMIN_KEY, API_KEY, MODEL_ID, R1D, assert_error, chat, data_events, field,
                      join_stream, key_id, metric)

MSG = [{"role": "user", "content": "What is 12 + 30?"}]


def record(server, rid, status=200):
    r = server.get(f"/admin/v1/interactions/{rid}", key=server.admin_key)
    assert r.status == status, (rid, r)
    return r.json()


def listed(server, query=""):
    """GET /admin/v1/interactions?query: (records, X-Has-More)."""
    r = server.get("/admin/v1/interactions" + query, key=server.admin_key)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/x-ndjson"), r.headers
    assert r.headers["x-has-more"] in ("true", "false"), r.headers
    recs = [json.loads(line) for line in r.text.split("\n") if line]
    assert r.text == "" or r.text.endswith("\n"), r.text[-50:]
    return recs, r.headers["x-has-more"] == "true"


def weight_version(server):
    r = server.get("/v1/models")
    assert r.status == 200, r
    return r.json()["data"][0]["weight_version"]


def check_common(rec, resp, server, object_, sent, key):
    """The fields every ok record has, against the client's answer dict."""
    assert rec["id"] == resp["id"]
    assert rec["object"] == object_
    assert rec["created"] == resp["created"]
    assert rec["model"] == MODEL_ID
    assert rec["weight_version"] == weight_version(server)
    assert rec["key_id"] == (key_id(key) if key else None)
    assert rec["request"] == sent, (rec["request"], sent)
    assert rec["status"] == "ok", rec
    assert "error" not in rec, rec
    assert rec["prompt_tokens"] == resp["usage"]["prompt_tokens"]
    assert isinstance(rec["latency_s"], float) and rec["latency_s"] > 0, rec
    assert isinstance(rec["ttft_s"], float) and 0 < rec["ttft_s"] <= rec["latency_s"], rec
    assert rec["feedback"] == []


# --- what a record holds ---------------------------------------------------------------

@pytest.mark.parametrize("stream,n", [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_chat_record_is_what_the_client_got(server, client, stream, n):
    extra = {"ignore_eos": True, "thinking_budget": 6}
    kw = dict(model=MODEL_ID, messages=MSG, max_tokens=14, temperature=0.9, seed=40 + n, n=n)
    if stream:
        kw.update(stream=True, stream_options={"include_usage": True})
    got = client.chat.completions.create(extra_body=extra, **kw)
    if stream:
        chunks = [c.to_dict() for c in got]
        usage_chunk = chunks[-1]
        assert usage_chunk["choices"] == [] and usage_chunk["usage"], usage_chunk
        joined = join_stream(chunks[:-1])
        resp = {"id": chunks[0]["id"], "created": chunks[0]["created"], "usage": usage_chunk["usage"]}
        answers = [(joined[i]["reasoning"], joined[i]["content"], joined[i]["finish_reason"])
                   for i in range(n)]
    else:
        resp = got.to_dict()
        answers = [(field(c.message, "reasoning_content"), c.message.content or "", c.finish_reason)
                   for c in got.choices]
    assert len(answers) == n
    # thinking_budget 6 of 14 tokens: both parts are there to compare
    assert all(r and c for r, c, _ in answers), answers
    rec = record(server, resp["id"])
    check_common(rec, resp, server, "chat.completion", dict(kw, **extra), API_KEY)
    assert rec["choices"] == [{"index": i, "reasoning_content": r, "content": c, "finish_reason": f}
                              for i, (r, c, f) in enumerate(answers)]
    assert rec["usage"] == resp["usage"]
    assert rec["usage"]["completion_tokens"] == 14 * n


def test_completions_record(server, client):
    prompts = ["The sky is", "Two plus two equals four because"]
    kw = dict(model=MODEL_ID, prompt=prompts, max_tokens=9, temperature=0.7, seed=5)
    got = client.completions.create(extra_body={"ignore_eos": True}, **kw)
    resp = got.to_dict()
    assert resp["object"] == "text_completion"
    rec = record(server, got.id)
    check_common(rec, resp, server, "text_completion", dict(kw, ignore_eos=True), API_KEY)
    # prompt_tokens is the sum over the prompts
    counts = [server.tokenize(prompt=p)["count"] for p in prompts]
    assert rec["prompt_tokens"] == sum(counts)
    assert got.id.startswith("cmpl-")
    by_index = sorted(got.choices, key=lambda c: c.index)
    assert rec["choices"] == [{"index": c.index, "content": c.text, "finish_reason": c.finish_reason}
                              for c in by_index]
    assert rec["usage"] == resp["usage"]
    # streamed, joined
    body = dict(kw, prompt=prompts[0], stream=True, ignore_eos=True)
    chunks = data_events(server.stream("/v1/completions", body).read_all())
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    rec = record(server, chunks[0]["id"])
    assert rec["request"] == body
    assert rec["choices"] == [{"index": 0, "content": text, "finish_reason": finish}]
    assert finish == "length" and rec["status"] == "ok"


def test_include_reasoning_false_still_logs_reasoning(server, client):
    extra = {"ignore_eos": True, "thinking_budget": 5, "include_reasoning": False}
    got = client.chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=16, temperature=0.9,
                                         seed=77, extra_body=extra)
    m = got.choices[0].message
    assert not field(m, "reasoning_content") and m.content, m
    rec = record(server, got.id)
    assert rec["request"]["include_reasoning"] is False
    assert rec["choices"][0]["reasoning_content"], rec["choices"]
    assert rec["choices"][0]["content"] == m.content
    # the same seed with reasoning on gives the reasoning the record has
    on = client.chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=16, temperature=0.9,
                                        seed=77, extra_body=dict(extra, include_reasoning=True))
    assert field(on.choices[0].message, "reasoning_content") == rec["choices"][0]["reasoning_content"]
    # streamed: nothing of the thought on the wire, all of it in the record
    body = chat(MSG[0]["content"], max_tokens=16, temperature=0.9, seed=77, stream=True, **extra)
    chunks = data_events(server.stream("/v1/chat/completions", body).read_all())
    wire = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    assert all(not ch["delta"].get("reasoning_content") for c in chunks for ch in c["choices"])
    rec = record(server, chunks[0]["id"])
    assert rec["choices"][0]["content"] == wire == m.content
    assert rec["choices"][0]["reasoning_content"] == field(on.choices[0].message, "reasoning_content")


def test_log_logprobs(start_server):
    s = start_server(["--log-logprobs", "true"])
    c = s.client()
    got = c.chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=12, temperature=1.0, seed=3,
                                    n=2, logprobs=True, extra_body={"ignore_eos": True, "thinking_budget": 4})
    rec = record(s, got.id)
    assert rec["key_id"] is None  # a server without API keys
    total = 0
    for ch, rch in zip(sorted(got.choices, key=lambda x: x.index), rec["choices"]):
        toks, lps = rch["tokens"], rch["logprobs"]
        assert len(toks) == len(lps) == 12, rch
        assert all(isinstance(t, int) and t >= 0 for t in toks)
        assert all(isinstance(x, float) and x <= 0 for x in lps)
        # the logprobs the client saw, token for token ("</think>" included)
        client_lps = [e.logprob for e in ch.logprobs.content]
        assert len(client_lps) == 12
        assert lps == pytest.approx(client_lps, abs=1e-4)
        total += len(toks)
    assert total == got.usage.completion_tokens == rec["usage"]["completion_tokens"]
    # completions too, streamed
    chunks = data_events(s.stream("/v1/completions", {"model": MODEL_ID, "prompt": "abc", "max_tokens": 7,
                                                      "ignore_eos": True, "stream": True,
                                                      "stream_options": {"include_usage": True}}).read_all())
    rec = record(s, chunks[0]["id"])
    assert len(rec["choices"][0]["tokens"]) == len(rec["choices"][0]["logprobs"]) == 7
    assert chunks[-1]["usage"]["completion_tokens"] == 7
    assert all(x <= 0 for x in rec["choices"][0]["logprobs"])


def test_log_logprobs_off_by_default(server, client):
    got = client.chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=3, logprobs=True)
    assert set(record(server, got.id)["choices"][0]) == {"index", "reasoning_content", "content",
                                                       "finish_reason"}


def test_nul_bytes_in_an_answer(server, client):
    """The tiny tokenizer is byte-level: token 0 is the byte 0x00, which JSON
    carries as \\u0000. A record holding it must read back (and take feedback)."""
    got = client.chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=3, logit_bias={"0": 100},
                                         reasoning_effort="none", extra_body={"ignore_eos": True})
    assert got.choices[0].message.content == "\0" * 3
    rec = record(server, got.id)
    assert rec["choices"][0]["content"] == "\0" * 3
    r = server.post("/v1/feedback", {"id": got.id, "rating": 1})
    assert r.status == 200, r
    recs, _ = listed(server, "?limit=10000")
    assert [x["choices"][0]["content"] for x in recs if x["id"] == got.id] == ["\0" * 3]
    assert [len(x["feedback"]) for x in recs if x["id"] == got.id] == [1]
    # and `r1d logs export` (read-only, beside the running server) has it too
    p = subprocess.run([R1D, "logs", "export", "--format", "raw", "--data-dir", server.data_dir],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert [x["choices"][0]["content"] for x in rows if x["id"] == got.id] == ["\0" * 3]


def test_log_interactions_false(start_server):
    s = start_server(["--log-interactions", "false"])
    c = s.client()
    got = c.chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=5,
                                    extra_body={"ignore_eos": True})
    assert got.usage.completion_tokens == 5
    chunks = data_events(s.stream("/v1/chat/completions",
                                  chat("hi", max_tokens=5, ignore_eos=True, stream=True)).read_all())
    assert join_stream(chunks)[0]["finish_reason"] == "length"
    comp = c.completions.create(model=MODEL_ID, prompt="abc", max_tokens=4)
    assert comp.choices[0].text is not None
    assert listed(s) == ([], False)
    for rid in (got.id, chunks[0]["id"], comp.id):
        assert_error(s.get(f"/admin/v1/interactions/{rid}"), 404, code="interaction_not_found")
    assert_error(s.post("/v1/feedback", {"id": got.id, "rating": 1}), 404, code="interaction_not_found")
    m = s.metrics()
    assert metric(m, "r1d_interactions_logged_total") == 0
    assert metric(m, "r1d_interactions_log_failed_total") == 0
    st = s.get("/admin/v1/server").json()["storage"]
    assert st["entries"]["interactions"] == 0, st
    # tasks still work: storage is open, only the log is off
    r = s.post("/admin/v1/tasks", '{"id": "a", "prompt": "p", "checker": {"type": "exact", "answer": "x"}}')
    assert r.status == 200 and r.json()["added"] == 1, r


# --- feedback ---------------------------------------------------------------------------

def test_feedback(server, client):
    got = client.chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=4)
    rid = got.id
    r = server.post("/v1/feedback", {"id": rid, "rating": 4, "preferred": "forty-two", "comment": "close"})
    assert r.status == 200, r
    fb = r.json()
    assert fb["object"] == "feedback" and fb["id"] == rid
    assert (fb["rating"], fb["preferred"], fb["comment"]) == (4, "forty-two", "close")
    assert fb["key_id"] == key_id(API_KEY)
    assert isinstance(fb["created"], int) and fb["created"] >= got.created
    # thumbs down, through the SDK's generic post
    down = client.post("/feedback", body={"id": rid, "rating": -1}, cast_to=object)
    assert down["rating"] == -1
    rec = record(server, rid)
    assert [f["rating"] for f in rec["feedback"]] == [4, -1]  # oldest first
    first = rec["feedback"][0]
    assert {k: first[k] for k in ("id", "rating", "preferred", "comment", "key_id")} == \
        {"id": rid, "rating": 4, "preferred": "forty-two", "comment": "close", "key_id": key_id(API_KEY)}
    assert "object" not in first
    # the JSONL listing carries it too
    recs, _ = listed(server, "?limit=10000")
    mine = [x for x in recs if x["id"] == rid]
    assert len(mine) == 1 and mine[0]["feedback"] == rec["feedback"]


def test_feedback_errors(server, client):
    rid = client.chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=2).id
    # an id of the right shape that was never logged (another nonce)
    other = rid[:-8] + ("0" * 8 if rid[-8:] != "0" * 8 else "1" * 8)
    for bad in (other, "chatcmpl-ffffffffffffffff00000000", "nope"):
        assert_error(server.post("/v1/feedback", {"id": bad, "rating": 1}), 404,
                     code="interaction_not_found", param="id")
    cases = [({"id": rid, "rating": 7}, "rating"),
             ({"id": rid, "rating": "x"}, "rating"),
             ({"id": rid, "rating": True}, "rating"),
             ({"id": rid, "rating": 1, "stars": 3}, "stars"),
             ({"rating": 1}, "id"),
             ({"id": 5, "rating": 1}, "id"),
             ({"id": rid, "comment": 5}, "comment"),
             ({"id": rid, "preferred": ["a"]}, "preferred")]
    for body, param in cases:
        assert_error(server.post("/v1/feedback", body), 400, type_="invalid_request_error",
                     code="invalid_value", param=param)
    # nothing but the id: one of rating, preferred, comment is required
    assert_error(server.post("/v1/feedback", {"id": rid}), 400, param="rating",
                 message_has=("at least one",))
    assert_error(server.post("/v1/feedback", "[1]"), 400)
    assert_error(server.post("/v1/feedback", "{not json"), 400)
    assert_error(server.post("/v1/feedback", {"id": rid, "rating": 1}, key=None), 401,
                 type_="authentication_error")
    assert_error(server.post("/v1/feedback", {"id": rid, "rating": 1}, key="wrong-key"), 401)
    # none of it was stored
    assert record(server, rid)["feedback"] == []


# --- admin: tasks -----------------------------------------------------------------------

TASKS = "\n".join([
    '{"id": "t1", "prompt": "2+2?", "checker": {"type": "math", "answer": "4"}}',
    '{"id": "t2", "prompt": "x", "checker": "math", "answer": 5, "split": "eval", "source": "gsm"}',
    '{bad json',
    '',
    '{"id": "t3", "prompt": "", "checker": {"type": "exact", "answer": "a"}}',
    '{"id": "t1", "prompt": "again", "checker": {"type": "exact", "answer": "a"}}',
    '{"messages": [{"role": "user", "content": "hi"}], "checker": {"type": "regex", "pattern": "^h"}}',
    '{"id": "t4", "prompt": "p", "checker": {"type": "exact", "answer": "a"}, "split": "eval"}',
]) + "\n"


@pytest.fixture()
def keyed_server(start_server, key_files):
    api, admin = key_files
    return start_server(["--api-key-file", api, "--admin-key-file", admin], api_key=API_KEY,
                        admin_key=ADMIN_KEY)


def tasks_page(s, query=""):
    r = s.get("/admin/v1/tasks" + query, key=ADMIN_KEY)
    assert r.status == 200, r
    j = r.json()
    assert j["object"] == "list", j
    return [t["id"] for t in j["data"]], j["has_more"], j.get("last_id")


def test_admin_tasks(keyed_server):
    s = keyed_server
    r = s.post("/admin/v1/tasks", TASKS, key=ADMIN_KEY, headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 200, r
    j = r.json()
    assert j["added"] == 4, j
    assert j["ids"][:2] == ["t1", "t2"] and j["ids"][3] == "t4", j
    gen = j["ids"][2]
    assert gen.startswith("task-") and len(gen) == 5 + 16, gen
    assert [(e["line"], e["code"]) for e in j["errors"]] == \
        [(3, "invalid_task"), (5, "invalid_task"), (6, "duplicate_id")], j["errors"]
    assert all(isinstance(e["message"], str) and e["message"] for e in j["errors"])
    assert "t1" in j["errors"][2]["message"]

    # strict: one bad line and nothing is stored
    strict = '{"id": "t9", "prompt": "p", "checker": {"type": "exact", "answer": "a"}}\n{"id": "t10"}\n'
    r = s.post("/admin/v1/tasks?strict=true", strict, key=ADMIN_KEY)
    assert r.status == 400, r
    j = r.json()
    assert j["added"] == 0 and j["error"]["code"] == "invalid_task", j
    assert [e["line"] for e in j["errors"]] == [2], j
    assert_error(s.get("/admin/v1/tasks/t9", key=ADMIN_KEY), 404, code="task_not_found")
    # a duplicate of a stored id is a line error, strict or not
    r = s.post("/admin/v1/tasks", '{"id": "t4", "prompt": "p", "checker": {"type": "exact", "answer": "a"}}',
               key=ADMIN_KEY)
    assert r.status == 400 and r.json()["errors"][0]["code"] == "duplicate_id", r
    assert_error(s.post("/admin/v1/tasks", "", key=ADMIN_KEY), 400, code="missing_field")

    # listing, in insertion order, paged
    assert tasks_page(s) == (["t1", "t2", gen, "t4"], False, "t4")
    assert tasks_page(s, "?limit=2") == (["t1", "t2"], True, "t2")
    assert tasks_page(s, "?limit=2&after=t2") == ([gen, "t4"], False, "t4")
    assert tasks_page(s, "?split=eval") == (["t2", "t4"], False, "t4")
    assert tasks_page(s, "?split=eval&limit=1") == (["t2"], True, "t2")
    assert tasks_page(s, "?split=eval&after=t2") == (["t4"], False, "t4")
    assert tasks_page(s, "?split=train") == (["t1", gen], False, gen)
    assert tasks_page(s, "?after=t4") == ([], False, None)
    assert_error(s.get("/admin/v1/tasks?split=test", key=ADMIN_KEY), 400, param="split")
    assert_error(s.get("/admin/v1/tasks?limit=0", key=ADMIN_KEY), 400, param="limit")
    assert_error(s.get("/admin/v1/tasks?limit=x", key=ADMIN_KEY), 400, param="limit")
    assert_error(s.get("/admin/v1/tasks?after=nope", key=ADMIN_KEY), 400, param="after")

    # one task, normalised: checker "math" + top-level answer moved in, a number as its text
    r = s.get("/admin/v1/tasks/t2", key=ADMIN_KEY)
    assert r.status == 200, r
    t2 = r.json()
    assert list(t2)[:3] == ["id", "prompt", "checker"], t2
    assert t2["checker"] == {"type": "math", "answer": "5"}
    assert (t2["split"], t2["source"], t2["tags"]) == ("eval", "gsm", [])
    assert isinstance(t2["created"], int) and "answer" not in t2
    r = s.get(f"/admin/v1/tasks/{gen}", key=ADMIN_KEY)
    assert r.status == 200 and r.json()["messages"][0]["content"] == "hi", r

    # delete
    r = s.request("DELETE", "/admin/v1/tasks/t2", key=ADMIN_KEY)
    assert r.status == 200 and r.json() == {"id": "t2", "object": "task", "deleted": True}, r
    assert_error(s.get("/admin/v1/tasks/t2", key=ADMIN_KEY), 404, code="task_not_found")
    assert_error(s.request("DELETE", "/admin/v1/tasks/t2", key=ADMIN_KEY), 404, code="task_not_found")
    assert tasks_page(s, "?split=eval") == (["t4"], False, "t4")
    # the id is free again
    r = s.post("/admin/v1/tasks", '{"id": "t2", "prompt": "y", "checker": {"type": "exact", "answer": "b"}}',
               key=ADMIN_KEY)
    assert r.status == 200 and r.json()["ids"] == ["t2"], r
    assert tasks_page(s)[0] == ["t1", gen, "t4", "t2"]
    assert s.get("/admin/v1/server", key=ADMIN_KEY).json()["storage"]["entries"]["tasks"] == 4


def test_admin_routes_need_the_admin_key(keyed_server):
    s = keyed_server
    rid = s.client().chat.completions.create(model=MODEL_ID, messages=MSG, max_tokens=2).id
    routes = [("GET", "/admin/v1/tasks", None), ("POST", "/admin/v1/tasks", TASKS),
              ("GET", "/admin/v1/tasks/t1", None), ("DELETE", "/admin/v1/tasks/t1", None),
              ("GET", "/admin/v1/interactions", None), ("GET", f"/admin/v1/interactions/{rid}", None)]
    for method, path, body in routes:
        assert_error(s.request(method, path, body, key=API_KEY), 403)
        assert_error(s.request(method, path, body, key=None), 401)
    # nothing was added by the refused POSTs
    assert tasks_page(s) == ([], False, None)
    assert record(s, rid)["feedback"] == []
    # the admin key works on the public routes too (routes_ops.c), named as itself
    r = s.post("/v1/feedback", {"id": rid, "rating": 1}, key=ADMIN_KEY)
    assert r.status == 200 and r.json()["key_id"] == key_id(ADMIN_KEY), r


# --- admin: the interaction log --------------------------------------------------------

def test_interactions_pagination(start_server):
    s = start_server()
    ids = []
    for i in range(5):
        body = {"model": MODEL_ID, "prompt": f"p{i}", "max_tokens": 2}
        r = s.post("/v1/completions", body)
        assert r.status == 200, r
        ids.append(r.json()["id"])
    assert ids == sorted(ids), "response ids of one server grow with time"
    recs, more = listed(s)
    assert [x["id"] for x in recs] == ids and not more
    assert recs[2]["request"] == {"model": MODEL_ID, "prompt": "p2", "max_tokens": 2}
    recs, more = listed(s, "?limit=2")
    assert [x["id"] for x in recs] == ids[:2] and more
    recs, more = listed(s, f"?limit=2&after={recs[-1]['id']}")
    assert [x["id"] for x in recs] == ids[2:4] and more
    # exactly `limit` left: no more
    recs, more = listed(s, f"?limit=2&after={ids[2]}")
    assert [x["id"] for x in recs] == ids[3:] and not more
    assert listed(s, f"?after={ids[4]}") == ([], False)
    assert listed(s, f"?after={ids[0]}&limit=1")[0][0]["id"] == ids[1]
    for q, param in [("?after=xyz", "after"), ("?after=chatcmpl-12", "after"), ("?limit=0", "limit"),
                     ("?limit=-3", "limit"), ("?limit=10001", "limit"), ("?limit=2x", "limit")]:
        assert_error(s.get("/admin/v1/interactions" + q), 400, param=param)
    assert_error(s.get("/admin/v1/interactions/nope"), 404, code="interaction_not_found")
    wrong_nonce = ids[0][:-1] + ("1" if ids[0][-1] == "0" else "0")
    assert_error(s.get("/admin/v1/interactions/" + wrong_nonce), 404, code="interaction_not_found")
    assert metric(s.metrics(), "r1d_interactions_logged_total") == 5


# --- a full map, retention -------------------------------------------------------------

def big_chat(i, tokens=64):
    """A request whose record is ~3.5 KB: the bulk is in `user` (part of the
    request as sent, so logged), which costs no prefill."""
    body = chat(f"{i} lorem ipsum", max_tokens=tokens, ignore_eos=True, temperature=0.5, seed=i)
    body["user"] = "u" * 3000
    return body


def test_full_map_keeps_serving(start_server):
    s = start_server(["--db-map-size", "64KiB", "--db-map-max", "64KiB"])
    stored, failed_at = [], None
    for i in range(60):
        r = s.post("/v1/chat/completions", big_chat(i))
        assert r.status == 200, r  # answers never wait on storage that fails
        assert r.json()["usage"]["completion_tokens"] == 64
        h = s.get("/health")
        assert h.status == 200, h
        if h.json()["status"] == "degraded":
            failed_at = r.json()["id"]
            break
        stored.append(r.json()["id"])
    assert failed_at, "a 64 KiB map never filled"
    assert stored, "not even one record fit in 64 KiB"
    h = s.get("/health").json()
    assert h["storage"]["ok"] is False and "full" in h["storage"]["error"], h
    m = s.metrics()
    assert metric(m, "r1d_storage_failing") == 1
    assert metric(m, "r1d_interactions_log_failed_total") >= 1
    assert metric(m, "r1d_interactions_logged_total") == len(stored)
    assert metric(m, "r1d_lmdb_map_max_bytes") == 65536
    st = s.get("/admin/v1/server").json()["storage"]
    assert st["ok"] is False and st["entries"]["interactions"] == len(stored), st
    assert_error(s.get(f"/admin/v1/interactions/{failed_at}"), 404, code="interaction_not_found")
    # serving goes on, streams too, while nothing can be stored
    for i in range(3):
        chunks = data_events(s.stream("/v1/chat/completions",
                                      dict(big_chat(100 + i), stream=True)).read_all())
        assert join_stream(chunks)[0]["finish_reason"] == "length"
    assert s.get("/health").json()["status"] == "degraded"
    # what was stored before is all there
    recs, more = listed(s)
    assert [x["id"] for x in recs] == stored and not more
    assert all(x["status"] == "ok" and len(x["choices"][0]["reasoning_content"]
                                           + x["choices"][0]["content"]) > 0 for x in recs)
    assert record(s, stored[0])["request"] == big_chat(0)
    # feedback on a stored answer: small ones may still fit in the last free
    # pages; fill them (bounded), then the map is full for feedback too
    comment = "c" * 1500
    for k in range(100):
        r = s.post("/v1/feedback", {"id": stored[0], "rating": 1, "comment": comment})
        if r.status != 200:
            break
    assert_error(r, 503, type_="server_error", code="storage_full")
    assert s.get("/health").json()["status"] == "degraded"
    assert len(record(s, stored[0])["feedback"]) == k
    # a feedback for an answer that was not stored is a 404 still
    assert_error(s.post("/v1/feedback", {"id": failed_at, "rating": 1}), 404, code="interaction_not_found")
    # tasks get the same 503
    r = s.post("/admin/v1/tasks", json.dumps({"id": "big", "prompt": "x" * 8000,
                                              "checker": {"type": "exact", "answer": "a"}}))
    assert_error(r, 503, code="storage_full")
    assert metric(s.metrics(), "r1d_storage_write_errors_total") >= 2


def test_retain_bytes_makes_room_at_the_cap(start_server):
    # at 64 KiB the map fills before retention can act (a delete needs free
    # pages too); 128 KiB with a 32 KiB cap on data prunes at the cap
    s = start_server(["--db-map-size", "128KiB", "--db-map-max", "128KiB", "--retain-bytes", "32KiB"])
    n = 40
    ids = []
    for i in range(n):
        r = s.post("/v1/chat/completions", big_chat(i, tokens=16))
        assert r.status == 200, r
        ids.append(r.json()["id"])
        assert s.get("/health").json() == {"status": "ok"}, i
    m = s.metrics()
    assert metric(m, "r1d_interactions_log_failed_total") == 0
    assert metric(m, "r1d_interactions_logged_total") == n
    assert metric(m, "r1d_storage_failing") == 0
    pruned = metric(m, "r1d_storage_pruned_total")
    assert pruned > 0
    recs, _ = listed(s)
    kept = [x["id"] for x in recs]
    # the oldest went, the newest stayed, in order
    assert kept == ids[len(ids) - len(kept):], (kept, ids)
    assert ids[-1] in kept and ids[0] not in kept
    assert len(kept) + pruned == n
    assert_error(s.get(f"/admin/v1/interactions/{ids[0]}"), 404, code="interaction_not_found")


def test_admin_checkpoints_lists_what_a_training_run_registered(keyed_server, tiny_model, tmp_path):
    s = keyed_server
    r = s.get("/admin/v1/checkpoints", key=ADMIN_KEY)
    assert r.status == 200 and r.json() == {"object": "list", "data": []}, r
    # a training run beside the live server registers into its data dir
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"{i} + 1 =", "completion": f" {i + 1}"})
                              for i in range(8)) + "\n")
    p = subprocess.run([R1D, "sft", "--model", str(tiny_model), "--data", str(data),
                        "--out", str(tmp_path / "out"), "--max-steps", "2", "--save-every", "1",
                        "--max-len", "64", "--threads", "1", "--data-dir", s.data_dir],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    r = s.get("/admin/v1/checkpoints", key=ADMIN_KEY)
    assert r.status == 200, r
    recs = r.json()["data"]
    assert [c["step"] for c in recs] == [2, 1] and recs[0]["parent"] == recs[1]["version"]
    r = s.get(f"/admin/v1/checkpoints/{recs[1]['version']}", key=ADMIN_KEY)
    assert r.status == 200 and r.json() == recs[1], r
    r = s.get("/admin/v1/checkpoints?limit=1&status=candidate", key=ADMIN_KEY)
    assert [c["step"] for c in r.json()["data"]] == [2], r
    assert r.json()["data"][0]["files"][0]["sha256"]
    assert s.get("/admin/v1/checkpoints?status=live", key=ADMIN_KEY).json()["data"] == []
    assert_error(s.get("/admin/v1/checkpoints?status=best", key=ADMIN_KEY), 400, param="status")
    assert_error(s.get("/admin/v1/checkpoints?limit=0", key=ADMIN_KEY), 400, param="limit")
    assert_error(s.get("/admin/v1/checkpoints/ckpt-00000000000000ff", key=ADMIN_KEY), 404)
    assert_error(s.get("/admin/v1/checkpoints/latest", key=ADMIN_KEY), 404)
    assert s.get("/admin/v1/checkpoints", key=API_KEY).status in (401, 403)
