"""`r1d eval`, `r1d rejection-sample` and `r1d distill` end to end on tiny
models: eval prints finite metrics and writes/appends a result row; a teacher
SFT'd for a few steps on worked answers makes accuracy non-zero, its
rejection-sampled rows are R1-distill chat rows that `r1d sft` trains on
(the thought counted as loss), distill produces OUT/last that `r1d generate`
loads; bad inputs exit 2 with one line."""
import json
import math
import shutil
from pathlib import Path

import pytest

from conftest import run

METRICS = ["pass1", "strict_pass1", "cons", "pass_k", "format_rate", "language", "readable",
           "mean_len", "truncated_rate"]
QUICK = ["--threads", "2", "--max-tokens", "16"]
# room for the teacher's worked answers (about 24 tokens)
TEACH = ["--threads", "2", "--max-tokens", "32"]
SUMS = [(1, 2), (3, 4), (2, 5), (6, 1)]


def write_tasks(path):
    rows = [{"id": f"t{i}", "prompt": f"What is {a} + {b}?",
             "checker": {"type": "math", "answer": str(a + b)}, "split": "train"}
            for i, (a, b) in enumerate(SUMS)]
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def teacher(tiny_model, tmp_path_factory):
    """The tiny model SFT'd on short worked answers until it mostly repeats
    them: a model whose samples are sometimes right and well formed."""
    d = tmp_path_factory.mktemp("teacher")
    rows = [{"messages": [{"role": "user", "content": f"What is {a} + {b}?"},
                          {"role": "assistant",
                           "content": f"<think>\n{a} plus {b} is {a + b}.\n</think>\n\n{a + b}"}]}
            for a, b in SUMS] * 8
    data = d / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run(["sft", "--model", str(tiny_model), "--data", str(data), "--out", str(d / "out"),
         "--lr", "3e-3", "--max-steps", "40", "--max-len", "128", "--max-tokens", "512",
         "--schedule", "constant", "--progress", "json", "--threads", "2"], check=True)
    return {"model": d / "out" / "last", "tasks": write_tasks(d / "tasks.jsonl")}


def test_eval_prints_finite_metrics_and_a_row(tiny_model, tmp_path):
    row, rows, samples = tmp_path / "row.json", tmp_path / "rows.jsonl", tmp_path / "s.jsonl"
    p = run(["eval", "--model", str(tiny_model), "--task-gen", "addition:1", "--count", "4",
             "--k", "2", "--out", str(row), "--append", str(rows), "--samples", str(samples),
             "--label", "base", "--json"] + QUICK)
    assert p.returncode == 0, p.err
    out = json.loads(p.out)
    assert out == json.loads(row.read_text())
    for m in METRICS:
        assert math.isfinite(out[m]) and math.isfinite(out[m + "_ci"]) and out[m + "_ci"] >= 0, m
        if m != "mean_len":
            assert 0 <= out[m] <= 1, m
    assert out["label"] == "base" and out["model"] == str(tiny_model)
    assert out["k"] == 2 and out["n_tasks"] == 4
    assert out["temperature"] == 0.6 and out["top_p"] == 0.95 and out["wall_s"] > 0
    assert 0 < out["mean_len"] <= 16
    lines = samples.read_text().splitlines()
    assert len(lines) == 8
    s = json.loads(lines[0])
    assert {"task", "completion", "answer", "key", "correct", "format_ok"} <= set(s)
    # --append adds one line per run; the table is for people
    p = run(["eval", "--model", str(tiny_model), "--task-gen", "addition:1", "--count", "4",
             "--k", "2", "--append", str(rows), "--label", "again"] + QUICK)
    assert p.returncode == 0, p.err
    assert "pass@1" in p.out and "cons@k" in p.out and "+-" in p.out
    appended = [json.loads(l) for l in rows.read_text().splitlines()]
    assert [r["label"] for r in appended] == ["base", "again"]
    # the same seed gives the same numbers
    assert appended[0]["pass1"] == appended[1]["pass1"]


def test_eval_of_a_trained_model_scores_above_zero(teacher, tmp_path):
    p = run(["eval", "--model", str(teacher["model"]), "--tasks", teacher["tasks"], "--k", "4",
             "--json"] + TEACH)
    assert p.returncode == 0, p.err
    out = json.loads(p.out)
    assert out["n_tasks"] == 4  # no eval split in the file: all of it
    assert out["pass1"] > 0 and out["pass_k"] >= out["pass1"]
    assert out["strict_pass1"] <= out["pass1"] and out["format_rate"] > 0


def test_rejection_sample_writes_rows_that_sft_trains_on(teacher, tiny_model, tmp_path):
    rows = tmp_path / "rs.jsonl"
    p = run(["rejection-sample", "--model", str(teacher["model"]), "--tasks", teacher["tasks"],
             "--k", "4", "--keep", "2", "--out", str(rows), "--json",
             "--pairs", str(tmp_path / "pairs.jsonl")] + TEACH)
    assert p.returncode == 0, p.err
    st = json.loads(p.out)
    assert st["prompts"] == 4 and st["samples"] == 16
    # preference pairs: a kept (right) answer against a rejected one
    pairs = [json.loads(l) for l in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert 1 <= len(pairs) == st["pairs"] <= 4  # the teacher errs often enough
    for pr in pairs:
        right = {f"What is {a} + {b}?": a + b for a, b in SUMS}[pr["prompt"]]
        assert pr["chosen"].strip() == str(right) and pr["rejected"] != pr["chosen"]
    assert st["accepted"] == sum(1 for _ in rows.read_text().splitlines()) > 0
    assert st["accepted"] + sum(st["rejected"].values()) == 16
    assert st["prompts_kept"] <= 4 and "accepted" in p.err
    kept = [json.loads(l) for l in rows.read_text().splitlines()]
    prompts = {f"What is {a} + {b}?": a + b for a, b in SUMS}
    per_prompt = {}
    for r in kept:
        user, reply = r["messages"]
        assert user["role"] == "user" and user["content"] in prompts
        assert reply["role"] == "assistant"
        assert reply["content"].startswith("<think>\n")
        thought, answer = reply["content"][len("<think>\n"):].split("\n</think>\n\n")
        assert answer.strip() == str(prompts[user["content"]])  # only correct ones
        per_prompt.setdefault(user["content"], []).append(reply["content"])
    for texts in per_prompt.values():
        assert len(texts) <= 2 and len(set(texts)) == len(texts)  # --keep, distinct
    # the SFT loader trains on the whole reply, thought included: the loss
    # tokens of one row are its thought, </think>, the answer and EOS (the
    # tiny tokenizer is one token per byte)
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(kept[0]) + "\n")
    p = run(["sft", "--model", str(tiny_model), "--data", str(one), "--out", str(tmp_path / "o1"),
             "--max-steps", "1", "--max-len", "128", "--progress", "json", "--threads", "2"])
    assert p.returncode == 0, p.err
    thought, answer = kept[0]["messages"][1]["content"][len("<think>\n"):].split("\n</think>\n\n")
    want = len(thought.encode()) + 1 + 1 + 2 + len(answer.encode()) + 1
    assert f"({want} with loss)" in p.err
    p = run(["sft", "--model", str(tiny_model), "--data", str(rows), "--out", str(tmp_path / "o"),
             "--max-steps", "2", "--max-len", "128", "--progress", "json", "--threads", "2"])
    assert p.returncode == 0, p.err
    assert "0 bad lines" in p.err


def test_distill_end_to_end(teacher, tmp_path, tmp_path_factory):
    student = tmp_path / "student"
    run(["model", "init", "--arch", "qwen2", "--preset", "tiny", "--seed", "8", "--out",
         str(student)], check=True)
    out = tmp_path / "d"
    p = run(["distill", "--teacher", str(teacher["model"]), "--student", str(student),
             "--tasks", teacher["tasks"], "--out", str(out), "--k", "4", "--keep", "2",
             "--max-steps", "3", "--lr", "1e-3", "--json"] + TEACH)
    assert p.returncode == 0, p.err
    res = json.loads(p.out)
    assert res["steps"] == 3 and math.isfinite(res["loss"])
    assert res["rejection"]["accepted"] > 0
    assert (out / "distill_data.jsonl").read_text().count("\n") == res["rejection"]["accepted"]
    assert (out / "last").resolve() == (out / "checkpoint-3").resolve()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    g = run(["generate", "--model", str(out / "last"), "--prompt", "What is 1 + 2?",
             "--max-tokens", "4", "--temperature", "0"])
    assert g.returncode == 0, g.err


def test_bad_inputs_exit_2_with_one_line(tiny_model, teacher, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    tj = json.loads((other / "tokenizer.json").read_text())
    tj["added_tokens"] = [a for a in tj["added_tokens"] if a["content"] != "</answer>"]
    (other / "tokenizer.json").write_text(json.dumps(tj))
    m, t = str(tiny_model), teacher["tasks"]
    cases = [
        (["eval", "--model", str(tmp_path / "missing"), "--tasks", t], "missing"),
        (["eval", "--model", m, "--tasks", t, "--k", "0"], "--k"),
        (["eval", "--model", m, "--tasks", t, "--split", "dev"], "--split"),
        (["eval", "--model", m, "--tasks", t, "--split", "eval"], "no tasks"),
        (["eval", "--model", m], "--tasks"),
        (["eval", "--model", m, "--tasks", t, "--answer-style", "xml"], "--answer-style"),
        (["eval", "--model", m, "--tasks", t, "--max-tokens", "100000"], "context"),
        (["eval", "--model", m, "--task-gen", "nope"], "nope"),
        (["rejection-sample", "--model", m, "--tasks", t], "--out"),
        (["rejection-sample", "--model", m, "--tasks", t, "--out", str(tmp_path / "x"),
          "--k", "2", "--keep", "3"], "--keep"),
        (["rejection-sample", "--model", m, "--tasks", t, "--out", str(tmp_path / "x"),
          "--k", "0"], "--k"),
        (["distill", "--teacher", m, "--student", str(other), "--tasks", t, "--out",
          str(tmp_path / "d")], "tokenizer"),
        (["distill", "--teacher", m, "--tasks", t, "--out", str(tmp_path / "d")], "--student"),
    ]
    for args, word in cases:
        p = run(args)
        assert p.returncode == 2, (args, p.err)
        lines = p.err.strip().splitlines()
        assert len(lines) == 1 and word in lines[0], (args, p.err)
    assert not (tmp_path / "d" / "distill_data.jsonl").exists()
