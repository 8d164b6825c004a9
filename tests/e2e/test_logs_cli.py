"""`r1d logs export` and `r1d db stat` beside a live server: the CLI opens the
database read-only and sees every answer the server has committed. Rows of
the messages format are what TRL / datasets read ({"messages": [...]}, one
per chat choice, the latest rating); the raw format keeps every record
(completions too) with its feedback; --since filters by time."""
import json
import subprocess

from e2e_util import MODEL_ID, R1D

MSG = [{"role": "user", "content": "What is 12 + 30?"}]


def r1d(*args):
    p = subprocess.run([R1D, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def chat(messages, **kw):
    return {"model": MODEL_ID, "messages": messages, **kw}


def rows(out):
    return [json.loads(line) for line in out.splitlines() if line]


def test_export_and_stat_beside_a_live_server(start_server, tmp_path):
    s = start_server()
    one = s.post("/v1/chat/completions", chat(MSG, max_tokens=4, n=2, seed=1)).json()
    two = s.post("/v1/chat/completions",
                 chat(MSG + [{"role": "assistant", "content": "42", "reasoning_content": "add"},
                             {"role": "user", "content": "and 1 more?"}], max_tokens=4)).json()
    cmpl = s.post("/v1/completions", {"model": MODEL_ID, "prompt": "12 + 30 =", "max_tokens": 3}).json()
    for rating in (-1, 5):  # the latest rating wins
        assert s.post("/v1/feedback", {"id": one["id"], "rating": rating}).status == 200

    rc, out, err = r1d("logs", "export", "--data-dir", s.data_dir)
    assert rc == 0, err
    got = rows(out)
    assert [r["id"] for r in got] == [one["id"], one["id"], two["id"]]
    assert "exported 3 rows from 3 interactions" in err
    for r, choice in zip(got[:2], one["choices"]):
        assert r["messages"][:-1] == MSG
        last = r["messages"][-1]
        assert last == {"role": "assistant", "content": choice["message"]["content"],
                        "reasoning_content": choice["message"]["reasoning_content"]}
        assert r["finish_reason"] == choice["finish_reason"]
        assert r["rating"] == 5
    # earlier turns lose their reasoning, as the R1 template drops it
    assert got[2]["messages"][1] == {"role": "assistant", "content": "42"}
    assert got[2]["rating"] is None

    out_file = tmp_path / "raw.jsonl"
    rc, _, err = r1d("logs", "export", "--format", "raw", "-o", str(out_file),
                     "--data-dir", s.data_dir)
    assert rc == 0, err
    raw = rows(out_file.read_text())
    assert [r["id"] for r in raw] == [one["id"], two["id"], cmpl["id"]]
    assert raw[2]["object"] == "text_completion"
    assert raw[2]["choices"][0]["content"] == cmpl["choices"][0]["text"]
    assert [f["rating"] for f in raw[0]["feedback"]] == [-1, 5]
    assert "feedback" not in raw[1]

    # --since: an age, a date in the future, Unix seconds
    rc, out, _ = r1d("logs", "export", "--since", "1h", "--format", "raw", "--data-dir", s.data_dir)
    assert rc == 0 and len(rows(out)) == 3
    rc, out, _ = r1d("logs", "export", "--since", "2999-01-01", "--data-dir", s.data_dir)
    assert rc == 0 and rows(out) == []
    rc, out, _ = r1d("logs", "export", "--since", str(cmpl["created"] + 3600),
                     "--format", "raw", "--data-dir", s.data_dir)
    assert rc == 0 and rows(out) == []

    rc, out, err = r1d("db", "stat", "--json", "--data-dir", s.data_dir)
    assert rc == 0, err
    st = json.loads(out)
    assert st["schema_version"] == 1
    assert st["tables"]["interactions"]["entries"] == 3
    assert st["tables"]["feedback"]["entries"] == 2
    assert st["map_size"] >= st["file_bytes"] >= st["data_bytes"] > 0
    rc, out, err = r1d("db", "stat", "--data-dir", s.data_dir)
    assert rc == 0 and "interactions" in out and "schema version 1" in out, err


def test_cli_bad_input(tmp_path):
    missing = str(tmp_path / "nothing")
    for args in (["logs", "export", "--data-dir", missing], ["db", "stat", "--data-dir", missing]):
        rc, out, err = r1d(*args)
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and "no database in" in err, err
    assert not (tmp_path / "nothing").exists()  # a reader creates nothing
    for args, msg in ((["logs", "export", "--since", "yesterday"], "--since"),
                      (["logs", "export", "--format", "csv"], "--format"),
                      (["logs", "frobnicate"], "unknown subcommand"),
                      (["db", "vacuum"], "unknown action"),
                      (["logs"], "expected `export`")):
        rc, _, err = r1d(*args)
        assert rc == 2 and msg in err and err.count("\n") == 1, (args, err)
