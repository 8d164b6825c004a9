"""POST /v1/completions: prompts as text, token ids and lists of both, n,
echo, legacy logprobs (also of the echoed prompt), streaming chunks."""
import pytest

from e2e_util import MODEL_ID, data_events

NOEOS = {"ignore_eos": True}


def ids_of(server, text):
    """Token ids whose detokenized text is exactly `text` (no special tokens)."""
    toks = server.tokenize(prompt=text)["tokens"]
    for k in range(0, min(3, len(toks))):
        if server.detokenize(toks[k:]) == text:
            return toks[k:]
    raise AssertionError(f"no suffix of {toks} detokenizes to {text!r}")


def cmpl(client, **kw):
    extra = dict(NOEOS)
    extra.update(kw.pop("extra_body", {}))
    return client.completions.create(model=MODEL_ID, extra_body=extra, **kw)


def test_text_prompt(client):
    r = cmpl(client, prompt="Once upon a time", max_tokens=8, temperature=0.0)
    assert r.object == "text_completion"
    assert r.id and r.model == MODEL_ID
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0 and c.finish_reason == "length" and isinstance(c.text, str)
    assert r.usage.completion_tokens == 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + 8


def test_token_id_prompt_equals_text_prompt(server, client):
    ids = ids_of(server, "Once upon a time")
    a = cmpl(client, prompt=ids, max_tokens=10, temperature=0.0)
    assert a.usage.prompt_tokens == len(ids)
    assert a.choices[0].finish_reason == "length"
    b = cmpl(client, prompt=server.detokenize(ids), max_tokens=10, temperature=0.0)
    if b.usage.prompt_tokens == len(ids):  # no BOS added to text prompts
        assert a.choices[0].text == b.choices[0].text


def test_lists_of_prompts_and_n(server, client):
    p1, p2 = ids_of(server, "alpha"), ids_of(server, "beta gamma")
    r = cmpl(client, prompt=[p1, p2], n=2, max_tokens=6, temperature=1.0, seed=5)
    assert sorted(c.index for c in r.choices) == [0, 1, 2, 3]
    by = {c.index: c.text for c in r.choices}
    # index = prompt_index * n + i; sample i of a prompt uses seed + i (for
    # the second prompt, seed + index is accepted too: the spec leaves it open)
    for i in range(2):
        one = cmpl(client, prompt=p1, max_tokens=6, temperature=1.0, seed=5 + i)
        assert one.choices[0].text == by[i], i
        cands = [cmpl(client, prompt=p2, max_tokens=6, temperature=1.0, seed=s).choices[0].text
                 for s in (5 + i, 5 + 2 + i)]
        assert by[2 + i] in cands, (i, by[2 + i], cands)
    assert r.usage.completion_tokens == 4 * 6
    # a list of strings gives one choice per string
    r = cmpl(client, prompt=["alpha", "beta gamma"], max_tokens=3, temperature=0.0)
    assert sorted(c.index for c in r.choices) == [0, 1]


def test_echo(server, client):
    ids = ids_of(server, "Hello world")
    plain = cmpl(client, prompt=ids, max_tokens=6, temperature=0.0)
    echo = cmpl(client, prompt=ids, max_tokens=6, temperature=0.0, echo=True)
    assert echo.choices[0].text == "Hello world" + plain.choices[0].text
    text_echo = cmpl(client, prompt="Hello world", max_tokens=6, temperature=0.0, echo=True)
    assert text_echo.choices[0].text.startswith("Hello world")


def test_logprobs(client, server):
    ids = ids_of(server, "Hello world")
    r = cmpl(client, prompt=ids, max_tokens=5, temperature=0.0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert l <= 0.0
        assert 2 <= len(top) <= 3, top
        # greedy: the chosen token has the highest logprob among the top ones
        assert abs(max(top.values()) - l) < 1e-4, (tok, l, top)
    assert lp.text_offset == sorted(lp.text_offset)


def test_echo_with_logprobs(server, client):
    ids = ids_of(server, "Hello world")
    r = cmpl(client, prompt=ids, max_tokens=3, temperature=0.0, logprobs=1, echo=True)
    c = r.choices[0]
    lp = c.logprobs
    n = len(ids) + 3
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset) == n, lp
    assert lp.token_logprobs[0] is None
    assert all(x is not None and x <= 0.0 for x in lp.token_logprobs[1:]), lp.token_logprobs
    assert "".join(lp.tokens[:len(ids)]) == "Hello world"
    assert c.text.startswith("Hello world")
    assert lp.text_offset[0] == 0
    assert lp.text_offset == sorted(lp.text_offset)
    # the generated part has the same logprobs as without echo
    plain = cmpl(client, prompt=ids, max_tokens=3, temperature=0.0, logprobs=1).choices[0].logprobs
    assert [round(x, 4) for x in lp.token_logprobs[-3:]] == [round(x, 4) for x in plain.token_logprobs]


def test_stream_raw_equals_non_stream(server, client):
    ids = ids_of(server, "stream me")
    body = {"model": MODEL_ID, "prompt": ids, "max_tokens": 12, "temperature": 0.8, "seed": 3,
            "ignore_eos": True}
    full = server.post("/v1/completions", body)
    assert full.status == 200, full
    fj = full.json()
    assert fj["object"] == "text_completion"
    s = server.stream("/v1/completions", dict(body, stream=True, stream_options={"include_usage": True}))
    assert s.status == 200 and s.headers["content-type"].startswith("text/event-stream")
    chunks = data_events(s.read_all())
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12, chunks[-1]
    text, finish = "", []
    for c in chunks[:-1]:
        assert c["object"] == "text_completion", c
        for ch in c["choices"]:
            assert set(ch) >= {"index", "text", "logprobs", "finish_reason"}, ch
            assert ch["index"] == 0
            text += ch["text"]
            if ch["finish_reason"]:
                finish.append(ch["finish_reason"])
    assert finish == ["length"]
    assert text == fj["choices"][0]["text"]


def test_sdk_stream(client):
    chunks = list(cmpl(client, prompt="abc", max_tokens=7, temperature=0.0, stream=True))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    full = cmpl(client, prompt="abc", max_tokens=7, temperature=0.0)
    assert text == full.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]


@pytest.mark.parametrize("bad,param", [
    ({"prompt": [1, "x"]}, "prompt"),
    ({"prompt": "x", "logprobs": 6}, "logprobs"),
    ({"prompt": "x", "echo": "yes"}, "echo"),
    ({"prompt": [999999]}, "prompt"),
])
def test_bad_fields(server, bad, param):
    from e2e_util import assert_error
    r = server.post("/v1/completions", dict({"model": MODEL_ID, "max_tokens": 2}, **bad))
    assert_error(r, 400, type_="invalid_request_error", param=param)
