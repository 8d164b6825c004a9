"""POST /v1/chat/completions: non-stream and stream (raw SSE and through the
openai SDK), reasoning_content vs content, n, stop, length, seeds, logprobs,
usage, and the reasoning controls (thinking_budget, reasoning_effort,
include_reasoning) on the tiny random model."""
import pytest

from e2e_util import MODEL_ID, chat, data_events, field, join_stream

MSG = [{"role": "user", "content": "What is 12 + 30?"}]


def prompt_count(server, messages=MSG):
    return server.tokenize(messages=messages, add_generation_prompt=True)["count"]


def check_usage(u, completion_tokens=None, prompt_tokens=None):
    assert set(u) >= {"prompt_tokens", "completion_tokens", "total_tokens",
                      "prompt_tokens_details", "completion_tokens_details"}, u
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u
    assert isinstance(u["prompt_tokens_details"]["cached_tokens"], int), u
    assert 0 <= u["prompt_tokens_details"]["cached_tokens"] <= u["prompt_tokens"], u
    rt = u["completion_tokens_details"]["reasoning_tokens"]
    assert isinstance(rt, int) and 0 <= rt <= u["completion_tokens"], u
    if completion_tokens is not None:
        assert u["completion_tokens"] == completion_tokens, u
    if prompt_tokens is not None:
        assert u["prompt_tokens"] == prompt_tokens, u


def sdk_chat(client, **kw):
    extra = kw.pop("extra_body", {})
    kw.setdefault("messages", MSG)
    return client.chat.completions.create(model=MODEL_ID, extra_body=extra, **kw)


def sdk_join(stream):
    """Joins an SDK chat stream per choice: {index: (content, reasoning, finish)}."""
    out = {}
    for chunk in stream:
        for ch in chunk.choices:
            c, r, f = out.get(ch.index, ("", "", None))
            d = ch.delta
            if d.content:
                c += d.content
            rc = field(d, "reasoning_content")
            if rc:
                r += rc
            if ch.finish_reason:
                assert f is None, "two finish reasons for one choice"
                f = ch.finish_reason
            out[ch.index] = (c, r, f)
    return out


def message_of(choice):
    return choice.message.content or "", field(choice.message, "reasoning_content") or ""


# --- shapes on the wire ------------------------------------------------------------

def test_non_stream_shape(server):
    body = chat("What is 12 + 30?", max_tokens=16, temperature=0.7, seed=1, ignore_eos=True)
    r = server.post("/v1/chat/completions", body)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/json"), r.headers
    j = r.json()
    assert j["id"].startswith("chatcmpl-"), j
    assert j["object"] == "chat.completion"
    assert isinstance(j["created"], int) and j["created"] > 1_600_000_000
    assert j["model"] == MODEL_ID
    assert len(j["choices"]) == 1
    ch = j["choices"][0]
    assert ch["index"] == 0
    assert ch["finish_reason"] == "length"
    assert ch.get("logprobs") is None
    m = ch["message"]
    assert m["role"] == "assistant"
    assert isinstance(m["content"], str) and isinstance(m["reasoning_content"], str), m
    assert "reasoning" not in m, m
    # 16 tokens after the prompt's "<think>\n": some text is reasoning
    assert m["reasoning_content"] or m["content"], m
    check_usage(j["usage"], completion_tokens=16, prompt_tokens=prompt_count(server))


def test_stream_shape_raw(server):
    body = chat("What is 12 + 30?", max_tokens=20, temperature=0.7, seed=2, ignore_eos=True,
                stream=True, stream_options={"include_usage": True},
                thinking_budget=5)
    s = server.stream("/v1/chat/completions", body)
    assert s.status == 200
    assert s.headers["content-type"].startswith("text/event-stream"), s.headers
    chunks = data_events(s.read_all())
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [], usage_chunk
    check_usage(usage_chunk["usage"], completion_tokens=20, prompt_tokens=prompt_count(server))
    for c in chunks[:-1]:
        assert c.get("usage") is None, c
        assert c["id"] == chunks[0]["id"] and c["created"] == chunks[0]["created"], c
        assert c["model"] == MODEL_ID
    joined = join_stream(chunks[:-1])
    assert list(joined) == [0]
    assert joined[0]["finish_reason"] == "length"
    # thinking_budget 5 then </think>: both parts present
    assert joined[0]["content"], joined


def test_stream_without_include_usage_has_no_usage(server):
    s = server.stream("/v1/chat/completions",
                      chat("hi", max_tokens=6, seed=3, ignore_eos=True, stream=True))
    chunks = data_events(s.read_all())
    assert all(c["choices"] for c in chunks), "a usage-only chunk without include_usage"
    assert all(c.get("usage") is None for c in chunks)
    join_stream(chunks)


# --- stream == non-stream -----------------------------------------------------------

CASES = [
    dict(temperature=0.8, seed=3, max_tokens=40, extra_body={"ignore_eos": True, "thinking_budget": 10}),
    dict(temperature=1.0, seed=11, max_tokens=48, extra_body={"ignore_eos": True}),
    dict(temperature=0.0, max_tokens=32, extra_body={"ignore_eos": True, "thinking_budget": 3}),
    dict(temperature=0.9, top_p=0.9, seed=5, max_tokens=32,
         extra_body={"ignore_eos": True, "top_k": 20, "min_p": 0.01, "repetition_penalty": 1.1,
                     "thinking_budget": 12}, presence_penalty=0.3, frequency_penalty=0.2),
]


@pytest.mark.parametrize("case", CASES, ids=["budget", "free", "greedy", "penalties"])
def test_stream_joined_equals_non_stream(client, case):
    full = sdk_chat(client, **case)
    content, reasoning = message_of(full.choices[0])
    joined = sdk_join(sdk_chat(client, stream=True, **case))
    assert joined[0][2] == full.choices[0].finish_reason == "length"
    assert joined[0][1] == reasoning
    assert joined[0][0] == content
    if "thinking_budget" in case["extra_body"]:
        assert content, "thinking_budget closes the thought, so an answer must follow"
    assert reasoning or content


def test_n3_stream_equals_non_stream_and_seed_plus_i(server, client):
    kw = dict(temperature=1.0, seed=100, max_tokens=24, extra_body={"ignore_eos": True, "thinking_budget": 8})
    full = sdk_chat(client, n=3, **kw)
    assert sorted(c.index for c in full.choices) == [0, 1, 2]
    by_index = {c.index: message_of(c) for c in full.choices}
    for c in full.choices:
        assert c.finish_reason == "length"
    assert full.usage.completion_tokens == 3 * 24
    assert len(set(by_index.values())) > 1, "three samples with seeds 100..102 all equal"
    # raw stream, joined per index
    body = chat(MSG[0]["content"], n=3, stream=True, temperature=1.0, seed=100, max_tokens=24,
                ignore_eos=True, thinking_budget=8)
    joined = join_stream(data_events(server.stream("/v1/chat/completions", body).read_all()))
    assert sorted(joined) == [0, 1, 2]
    for i in range(3):
        assert (joined[i]["content"], joined[i]["reasoning"]) == by_index[i], i
        assert joined[i]["finish_reason"] == "length"
    # choice i is the n=1 request with seed 100+i
    for i in range(3):
        one = sdk_chat(client, **dict(kw, seed=100 + i))
        assert message_of(one.choices[0]) == by_index[i], i


# --- sampling controls ---------------------------------------------------------------

def test_seed_reproducible(client):
    kw = dict(temperature=1.0, max_tokens=32, extra_body={"ignore_eos": True})
    a = message_of(sdk_chat(client, seed=42, **kw).choices[0])
    b = message_of(sdk_chat(client, seed=42, **kw).choices[0])
    c = message_of(sdk_chat(client, seed=43, **kw).choices[0])
    assert a == b
    assert a != c


def test_finish_length_and_max_completion_tokens(client):
    r = sdk_chat(client, max_tokens=5, temperature=0.5, seed=1, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    r = sdk_chat(client, max_completion_tokens=7, temperature=0.5, seed=1,
                 extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 7


def test_cut_inside_the_thought(client, think_end_id):
    r = sdk_chat(client, max_tokens=4, temperature=0.0, logit_bias={str(think_end_id): -100},
                 extra_body={"ignore_eos": True})
    content, reasoning = message_of(r.choices[0])
    assert r.choices[0].finish_reason == "length"
    assert content == ""
    assert r.usage.completion_tokens_details.reasoning_tokens == 4


def test_logit_bias_forces_a_token(client, byte_ids):
    r = sdk_chat(client, max_tokens=8, temperature=1.0, seed=9,
                 logit_bias={str(byte_ids["a"]): 100}, extra_body={"ignore_eos": True})
    content, reasoning = message_of(r.choices[0])
    # every token is "a"; the prompt ends inside <think>, so it is all reasoning
    assert reasoning == "a" * 8, (reasoning, content)
    assert content == ""


def test_stop_strings(client, byte_ids):
    # mostly "a" and "b" (bias), thought closed at once (reasoning_effort none),
    # so the content is plain ASCII; then stop on a piece of it
    bias = {str(byte_ids["a"]): 40, str(byte_ids["b"]): 40}
    kw = dict(temperature=1.0, seed=21, max_tokens=24, logit_bias=bias,
              extra_body={"ignore_eos": True, "reasoning_effort": "none"})
    base, _ = message_of(sdk_chat(client, **kw).choices[0])
    assert len(base) == 24 and set(base) <= {"a", "b"}, base
    stop = base[6:9]
    expect = base[:base.index(stop)]
    r = sdk_chat(client, stop=[stop, "zzzq"], **kw)
    content, _ = message_of(r.choices[0])
    assert r.choices[0].finish_reason == "stop"
    assert content == expect, (base, stop, content)
    # a single string and the stream give the same
    r = sdk_chat(client, stop=stop, **kw)
    assert message_of(r.choices[0])[0] == expect
    joined = sdk_join(sdk_chat(client, stop=[stop], stream=True, **kw))
    assert joined[0][0] == expect and joined[0][2] == "stop"


def test_logprobs_cover_every_token(client):
    r = sdk_chat(client, max_tokens=6, temperature=0.0, logprobs=True, top_logprobs=3,
                 extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert len(lp.content) == 6  # reasoning tokens included
    for e in lp.content:
        assert isinstance(e.token, str)
        assert e.logprob <= 0.0
        assert isinstance(e.bytes, list) and all(0 <= b < 256 for b in e.bytes)
        assert len(e.top_logprobs) == 3
        tops = [t.logprob for t in e.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        # greedy: the chosen token is the most likely one
        assert e.top_logprobs[0].token == e.token
        assert abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4
    # the stream carries the same logprobs
    tokens = []
    for chunk in sdk_chat(client, max_tokens=6, temperature=0.0, logprobs=True, top_logprobs=3,
                          stream=True, extra_body={"ignore_eos": True}):
        for ch in chunk.choices:
            if ch.logprobs and ch.logprobs.content:
                tokens += [(e.token, round(e.logprob, 4)) for e in ch.logprobs.content]
    assert tokens == [(e.token, round(e.logprob, 4)) for e in lp.content]


def test_logprobs_off_by_default(client):
    r = sdk_chat(client, max_tokens=3, temperature=0.0)
    assert r.choices[0].logprobs is None


def test_include_usage_chunk_sdk(client):
    chunks = list(sdk_chat(client, max_tokens=9, temperature=0.3, seed=4, stream=True,
                           stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens == 9
    assert last.usage.total_tokens == last.usage.prompt_tokens + 9
    assert last.usage.completion_tokens_details.reasoning_tokens is not None
    assert all(c.usage is None for c in chunks[:-1])


def test_prompt_tokens_cached_on_repeat(client):
    msgs = [{"role": "user", "content": "A longer question that fills more than one KV block " * 3}]
    sdk_chat(client, messages=msgs, max_tokens=2, temperature=0.0)
    r = sdk_chat(client, messages=msgs, max_tokens=2, temperature=0.0)
    assert r.usage.prompt_tokens > 100
    # the prefix cache holds whole blocks of the identical prompt
    assert r.usage.prompt_tokens_details.cached_tokens >= 64, r.usage


# --- reasoning controls ----------------------------------------------------------------

def test_thinking_budget(client, think_end_id):
    for budget in (0, 4):
        r = sdk_chat(client, max_tokens=30, temperature=1.0, seed=8, logprobs=True,
                     extra_body={"ignore_eos": True, "thinking_budget": budget})
        content, reasoning = message_of(r.choices[0])
        u = r.usage
        assert u.completion_tokens == 30
        assert u.completion_tokens_details.reasoning_tokens <= budget + 1, (budget, u)
        assert content, f"budget {budget}: no answer after the forced </think>"
        toks = [e.token for e in r.choices[0].logprobs.content]
        assert "</think>" in toks[:budget + 1], (budget, toks[:budget + 2])
        if budget == 0:
            assert reasoning == ""


def test_thinking_budget_stream_matches(client):
    kw = dict(max_tokens=20, temperature=0.9, seed=12, extra_body={"ignore_eos": True, "thinking_budget": 3})
    content, reasoning = message_of(sdk_chat(client, **kw).choices[0])
    j = sdk_join(sdk_chat(client, stream=True, **kw))
    assert j[0][:2] == (content, reasoning)
    assert content


def test_reasoning_effort_none(server, client, byte_ids):
    msgs = [{"role": "user", "content": "hi"}]
    on = server.tokenize(messages=msgs, add_generation_prompt=True)
    r = sdk_chat(client, messages=msgs, max_tokens=8, temperature=1.0, seed=2,
                 logit_bias={str(byte_ids["a"]): 100},
                 reasoning_effort="none", extra_body={"ignore_eos": True})
    content, reasoning = message_of(r.choices[0])
    assert content == "a" * 8, (content, reasoning)
    assert reasoning == ""
    assert r.usage.completion_tokens_details.reasoning_tokens == 0
    # the prompt closed the thought itself: it is longer than the thinking one
    assert r.usage.prompt_tokens > on["count"], (r.usage, on)
    # streamed: only content deltas carry text
    j = sdk_join(sdk_chat(client, messages=msgs, max_tokens=8, temperature=1.0, seed=2,
                          logit_bias={str(byte_ids["a"]): 100}, stream=True,
                          reasoning_effort="none", extra_body={"ignore_eos": True}))
    assert j[0][:2] == ("a" * 8, "")


def test_include_reasoning_false(server, client):
    kw = dict(max_tokens=24, temperature=0.9, seed=31, extra_body={"ignore_eos": True, "thinking_budget": 6})
    content, reasoning = message_of(sdk_chat(client, **kw).choices[0])
    assert reasoning and content
    body = chat(MSG[0]["content"], max_tokens=24, temperature=0.9, seed=31, ignore_eos=True,
                thinking_budget=6, include_reasoning=False)
    r = server.post("/v1/chat/completions", body)
    assert r.status == 200, r
    m = r.json()["choices"][0]["message"]
    assert not m.get("reasoning_content") and not m.get("reasoning"), m
    assert m["content"] == content
    # reasoning tokens are still counted as used
    assert r.json()["usage"]["completion_tokens"] == 24
    chunks = data_events(server.stream("/v1/chat/completions", dict(body, stream=True)).read_all())
    text = ""
    for c in chunks:
        for ch in c["choices"]:
            assert not ch["delta"].get("reasoning_content"), ch
            assert not ch["delta"].get("reasoning"), ch
            text += ch["delta"].get("content") or ""
    assert text == content


def test_reasoning_content_in_history_is_dropped(server):
    a = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
         {"role": "user", "content": "again"}]
    b = [dict(m) for m in a]
    b[1]["reasoning_content"] = "secret thoughts"
    ta = server.tokenize(messages=a, add_generation_prompt=True)["tokens"]
    tb = server.tokenize(messages=b, add_generation_prompt=True)["tokens"]
    assert ta == tb
