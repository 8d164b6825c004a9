"""Every error is {"error":{"message","type","param","code"}} with the right
status: bad JSON (line and column), wrong types and ranges (param names the
field), unknown model, context too long, keys (401/403), body too large (413),
unknown routes; and the openai SDK raises the matching exception classes."""
import re

import openai
import pytest

from e2e_util import API_KEY, CONTEXT, MODEL_ID, assert_error, chat

CHAT = "/v1/chat/completions"


def test_invalid_json_names_line_and_column(server):
    body = b'{"model": "tiny",\n "messages": [}'
    err = assert_error(server.post(CHAT, body), 400, type_="invalid_request_error")
    m = re.search(r"line (\d+) column (\d+)", err["message"])
    assert m, err
    assert int(m.group(1)) == 2, err
    assert 13 <= int(m.group(2)) <= 16, err  # the "}" is the 15th character of line 2


def test_not_an_object(server):
    assert_error(server.post(CHAT, b"[1, 2]"), 400, type_="invalid_request_error")
    assert_error(server.post(CHAT, b""), 400, type_="invalid_request_error")


BAD_FIELDS = [
    ("temperature", "hot"), ("temperature", -0.5), ("top_p", 1.5), ("top_p", "x"),
    ("max_tokens", "ten"), ("max_tokens", -1), ("max_completion_tokens", 1.5),
    ("n", 0), ("n", 65), ("stream", "yes"), ("seed", "abc"), ("stop", 5),
    ("stop", ["a"] * 9), ("logprobs", "yes"), ("top_logprobs", 21), ("top_logprobs", -1),
    ("logit_bias", "x"), ("logit_bias", {"1": "high"}), ("presence_penalty", "x"),
    ("frequency_penalty", 3.5), ("repetition_penalty", 0), ("top_k", "x"), ("min_p", 2),
    ("thinking_budget", -1), ("thinking_budget", "x"), ("include_reasoning", "no"),
    ("reasoning_effort", 3), ("ignore_eos", "x"), ("messages", "hi"), ("model", 5),
    ("stream_options", "x"), ("user", 5),
]


@pytest.mark.parametrize("name,value", BAD_FIELDS, ids=[f"{n}={v!r}"[:40] for n, v in BAD_FIELDS])
def test_wrong_field_type_or_range(server, name, value):
    body = chat("hi", max_tokens=2)
    body[name] = value
    assert_error(server.post(CHAT, body), 400, type_="invalid_request_error", param=name)


def test_unknown_fields_ignored(server):
    r = server.post(CHAT, chat("hi", max_tokens=2, some_future_field={"x": 1}, another=[1]))
    assert r.status == 200, r


def test_bad_messages(server):
    assert_error(server.post(CHAT, {"model": MODEL_ID, "messages": []}), 400, type_="invalid_request_error")
    assert_error(server.post(CHAT, {"model": MODEL_ID}), 400, type_="invalid_request_error", param="messages")
    assert_error(server.post(CHAT, {"model": MODEL_ID, "messages": [{"role": "wizard", "content": "x"}]}),
                 400, type_="invalid_request_error")
    assert_error(server.post(CHAT, {"model": MODEL_ID, "messages": [{"role": "user", "content": 5}]}),
                 400, type_="invalid_request_error")


def test_unknown_model(server, client):
    err = assert_error(server.post(CHAT, dict(chat("hi"), model="nope")), 404, code="model_not_found")
    assert err["message"] == "The model `nope` does not exist.", err
    err = assert_error(server.post("/v1/completions", {"model": "nope", "prompt": "x"}), 404,
                       code="model_not_found")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


def test_context_length_exceeded(server, client):
    text = "abcdefghij" * 260
    n = server.tokenize(messages=[{"role": "user", "content": text}], add_generation_prompt=True)["count"]
    assert n > CONTEXT
    err = assert_error(server.post(CHAT, chat(text, max_tokens=5)), 400, type_="invalid_request_error",
                       code="context_length_exceeded")
    assert str(n) in err["message"] and str(CONTEXT) in err["message"], err
    # prompt fits, but prompt + max_tokens does not
    fits = "abcdefghij" * 190
    r = server.post(CHAT, chat(fits, max_tokens=1000))
    assert_error(r, 400, type_="invalid_request_error")
    ids = list(range(100, 200)) * 21
    assert_error(server.post("/v1/completions", {"model": MODEL_ID, "prompt": ids, "max_tokens": 1}), 400,
                 code="context_length_exceeded")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": text}])


@pytest.mark.parametrize("path,method", [("/v1/chat/completions", "POST"), ("/v1/completions", "POST"),
                                         ("/v1/models", "GET"), ("/tokenize", "POST"), ("/detokenize", "POST")])
def test_missing_or_wrong_key(server, path, method):
    body = {"model": MODEL_ID, "prompt": "x", "messages": [{"role": "user", "content": "x"}],
            "tokens": [1]} if method == "POST" else None
    for key in (None, "wrong-key-0123456789abcdef", API_KEY + "x", API_KEY[:-1]):
        r = server.request(method, path, body, key=key)
        assert_error(r, 401, type_="authentication_error")
    r = server.request(method, path, body, key=None, headers={"Authorization": "Basic " + API_KEY})
    assert_error(r, 401, type_="authentication_error")


def test_sdk_wrong_key(server):
    with pytest.raises(openai.AuthenticationError):
        server.client(key="wrong-key-0123456789abcdef").models.list()


def test_admin_with_public_key(server):
    assert_error(server.get("/admin/v1/server", key=API_KEY), 403)
    assert_error(server.get("/admin/v1/server", key="wrong-key-0123456789abcdef"), 401,
                 type_="authentication_error")


def test_body_too_large(server):
    big = chat("x" * 300_000)  # the shared server's --max-body is 262144
    assert_error(server.post(CHAT, big), 413)
    # the server still answers afterwards
    assert server.get("/health").status == 200


def test_unknown_route_and_method(server):
    assert_error(server.get("/v1/nothing-here"), 404)
    assert_error(server.get("/v1/feedbackx"), 404)
    r = server.get("/v1/chat/completions")
    assert r.status in (404, 405), r
    assert_error(r, r.status)
