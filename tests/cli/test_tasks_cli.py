"""`r1d tasks import|export|list|stats`: bad lines reported by number while
the good ones are stored, --strict storing nothing, export -> import ->
export byte-identical, a canonical file exported as itself, and the readers'
one-line error when there is no database."""
import json
import re

from conftest import run

GOOD_A = {"id": "gsm-1", "prompt": "Natalia sold 48 clips in April and half as many in May. How many in all?",
          "checker": "math", "answer": 72, "source": "gsm8k"}
GOOD_B = {"id": "chat-1", "messages": [{"role": "system", "content": "Answer briefly."},
                                       {"role": "user", "content": "Capital of France?"}],
          "checker": {"type": "exact", "answer": "Paris", "case_sensitive": False}, "split": "eval"}
GOOD_C = {"prompt": "Use 3, 8, 1, 1 to make 24.", "checker": {"type": "countdown", "numbers": [3, 8, 1, 1], "target": 24}}


def jl(*rows):
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)


def import_file(tmp_path, text, data_dir, *extra, name="tasks.jsonl"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return run(["tasks", "import", str(path), "--data-dir", str(data_dir)] + list(extra)), path


def export(data_dir, *extra):
    p = run(["tasks", "export", "--data-dir", str(data_dir)] + list(extra))
    assert p.returncode == 0, p.err
    return p.stdout


def ids_of(jsonl_bytes):
    return [json.loads(l)["id"] for l in jsonl_bytes.decode().splitlines()]


def test_import_reports_each_bad_line_and_stores_the_good(tmp_path):
    text = jl(GOOD_A,                                                              # 1
              '{"id": "broken", "prompt": "x", ',                                  # 2 bad JSON
              {"id": "t2", "prompt": "x", "checker": {"type": "mathh", "answer": "1"}},  # 3
              "",                                                                  # 4 blank
              GOOD_B,                                                              # 5
              {"id": "t3", "prompt": "x", "checker": {"type": "math"}},            # 6 no answer
              {"id": "gsm-1", "prompt": "again", "checker": "math", "answer": 1},  # 7 duplicate
              {"id": "t4", "prompt": "x", "checker": {"type": "regex", "pattern": "a(b"}},  # 8
              GOOD_C)                                                              # 9
    data = tmp_path / "data"
    p, path = import_file(tmp_path, text, data)
    assert p.returncode == 2, p.err
    assert p.out == "imported 3 tasks, 5 bad lines (0 skipped)\n"
    errs = p.err.splitlines()
    assert len(errs) == 5, p.err
    expect = [(2, "invalid JSON"),
              (3, 'checker.type "mathh" is not one of math, countdown, exact, regex, code'),
              (6, "checker.answer is required for a math checker"),
              (7, 'duplicate id "gsm-1" (first on line 1)'),
              (8, "checker.pattern: bad regex at offset 3: missing closing parenthesis")]
    for line, (n, needle) in zip(errs, expect):
        assert line.startswith(f"r1d: {path}:{n}: "), line
        assert needle in line, (needle, line)
    out = export(data)
    assert ids_of(out)[:2] == ["gsm-1", "chat-1"]
    rows = [json.loads(l) for l in out.decode().splitlines()]
    assert rows[0]["checker"] == {"type": "math", "answer": "72"}
    assert rows[0]["prompt"] == GOOD_A["prompt"]  # not the duplicate's
    assert rows[2]["id"].startswith("task-") and len(rows[2]["id"]) == 21
    assert rows[1]["split"] == "eval" and rows[2]["split"] == "train"

    # a second import of the same tasks: every id is taken now
    q, path = import_file(tmp_path, jl(GOOD_A, GOOD_B), data, name="again.jsonl")
    assert q.returncode == 2
    assert q.out == "imported 0 tasks, 2 bad lines (0 skipped)\n"
    assert f'r1d: {path}:1: id "gsm-1" is already stored' in q.err
    assert f'r1d: {path}:2: id "chat-1" is already stored' in q.err


def test_clean_import_exits_0(tmp_path):
    p, _ = import_file(tmp_path, jl(GOOD_A, GOOD_B, GOOD_C), tmp_path / "data")
    assert p.returncode == 0, p.err
    assert p.out == "imported 3 tasks, 0 bad lines (0 skipped)\n"
    assert p.err == ""


def test_strict_stores_nothing(tmp_path):
    data = tmp_path / "data"
    p, path = import_file(tmp_path, jl(GOOD_A, GOOD_B, {"id": "x", "prompt": "p", "checker": "math"}, GOOD_C),
                          data, "--strict")
    assert p.returncode == 2
    assert p.out == "imported 0 tasks, 1 bad lines (3 skipped)\n"
    assert p.err.splitlines() == [f'r1d: {path}:3: answer is required with "checker": "math"']
    assert export(data) == b""
    # strict and clean: everything goes in
    p, _ = import_file(tmp_path, jl(GOOD_A, GOOD_B), data, "--strict")
    assert p.returncode == 0, p.err
    assert ids_of(export(data)) == ["gsm-1", "chat-1"]
    # a duplicate alone refuses a strict batch
    p, path = import_file(tmp_path, jl({"id": "new", "prompt": "p", "checker": "math", "answer": 1}, GOOD_A),
                          data, "--strict")
    assert p.returncode == 2
    assert p.out == "imported 0 tasks, 1 bad lines (1 skipped)\n"
    assert f'r1d: {path}:2: id "gsm-1" is already stored' in p.err
    assert ids_of(export(data)) == ["gsm-1", "chat-1"]


def test_export_import_export_is_byte_identical(tmp_path):
    rows = [GOOD_A, GOOD_B, GOOD_C,
            {"prompt": "Écris « bonjour » — 你好 🙂\ttab", "checker": {"type": "regex", "pattern": "^bonjour$", "flags": "im"},
             "tags": ["fr", "greeting"], "weird": {"z": [1.5, 0.1, 1e-7, 3], "a": None}},
            {"id": "code-1", "prompt": "Add two numbers.", "split": "eval",
             "checker": {"type": "code", "tests": [{"input": "1 2\n", "output": "3\n"}], "time_limit_s": 2.5}},
            {"id": "tol", "prompt": "pi?", "checker": {"type": "math", "answer": 3.14159, "tolerance": 0.001}}]
    a, b = tmp_path / "a", tmp_path / "b"
    p, _ = import_file(tmp_path, jl(*rows), a)
    assert p.returncode == 0, p.err
    first = export(a)
    assert len(first.splitlines()) == len(rows)
    (tmp_path / "export.jsonl").write_bytes(first)
    p = run(["tasks", "import", str(tmp_path / "export.jsonl"), "--data-dir", str(b)])
    assert p.returncode == 0, p.err
    assert export(b) == first
    # -o and --split write the same bytes as stdout, filtered
    out = tmp_path / "eval.jsonl"
    assert export(b, "--split", "eval", "-o", str(out)) == b""
    assert out.read_bytes() == b"".join(l + b"\n" for l in first.splitlines() if b'"split":"eval"' in l)
    assert ids_of(out.read_bytes()) == ["chat-1", "code-1"]


def test_canonical_file_exports_as_itself(tmp_path):
    canon = (
        '{"id":"c1","prompt":"What is 6*7?","checker":{"type":"math","answer":"42","tolerance":0.5},'
        '"split":"train","source":"hand","tags":["arith"],"created":1700000000}\n'
        '{"id":"c2","messages":[{"role":"user","content":"Say \\"hi\\"\\n"}],"checker":{"type":"exact",'
        '"answer":"hi","case_sensitive":false,"strip":true},"split":"eval","source":"","tags":[],"created":1}\n'
        '{"id":"c3","prompt":"x","checker":{"type":"code","language":"python","tests":[{"input":"",'
        '"output":"1"}],"time_limit_s":10},"split":"train","source":"","tags":[],"created":2,"extra":{"k":[1,2.5,0.1,1e-7,-0.0]}}\n'
        '{"id":"task-0000000000000001","prompt":"y","checker":{"type":"countdown","numbers":[1,2],"target":3,'
        '"answer":"1+2"},"split":"train","source":"","tags":[],"created":3}\n')
    path = tmp_path / "canon.jsonl"
    path.write_text(canon, encoding="utf-8")
    data = tmp_path / "data"
    p = run(["tasks", "import", "-", "--data-dir", str(data)], stdin=canon)
    assert p.returncode == 0, p.err
    assert export(data) == path.read_bytes()


def test_one_json_object_file(tmp_path):
    text = json.dumps(GOOD_B, indent=2) + "\n"
    data = tmp_path / "data"
    p, _ = import_file(tmp_path, text, data, name="one.json")
    assert p.returncode == 0, p.err
    assert p.out == "imported 1 tasks, 0 bad lines (0 skipped)\n"
    assert ids_of(export(data)) == ["chat-1"]


def test_list_and_stats(tmp_path):
    data = tmp_path / "data"
    p, _ = import_file(tmp_path, jl(GOOD_A, GOOD_B, GOOD_C), data)
    assert p.returncode == 0, p.err
    p = run(["tasks", "list", "--data-dir", str(data)])
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[0].split() == ["ID", "SPLIT", "CHECKER", "SOURCE", "PROMPT"]
    assert lines[1].split()[:4] == ["gsm-1", "train", "math", "gsm8k"]
    assert lines[1].endswith(GOOD_A["prompt"][:60])
    assert lines[2].split()[:3] == ["chat-1", "eval", "exact"]
    assert lines[2].endswith("Capital of France?")
    assert len(lines) == 4
    p = run(["tasks", "list", "--data-dir", str(data), "--limit", "1", "--after", "gsm-1"])
    assert [l.split()[0] for l in p.out.splitlines()[1:]] == ["chat-1"]
    assert "--after chat-1" in p.err
    p = run(["tasks", "list", "--data-dir", str(data), "--split", "eval"])
    assert [l.split()[0] for l in p.out.splitlines()[1:]] == ["chat-1"]
    p = run(["tasks", "list", "--data-dir", str(data), "--after", "nope"])
    assert p.returncode == 2 and 'no task with id "nope"' in p.err
    p = run(["tasks", "stats", "--data-dir", str(data)])
    assert p.returncode == 0, p.err
    assert json.loads(p.out) == {
        "total": 3, "by_split": {"train": 2, "eval": 1},
        "by_checker": {"math": 1, "countdown": 1, "exact": 1, "regex": 0, "code": 0},
        "by_source": {"gsm8k": 1, "": 2}}


def test_readers_without_a_database(tmp_path):
    missing = tmp_path / "nothing-here"
    for args in (["export"], ["list"], ["stats"], ["export", "-o", str(tmp_path / "x.jsonl")]):
        p = run(["tasks"] + args + ["--data-dir", str(missing)])
        assert p.returncode == 2, (args, p.err)
        assert p.err.splitlines() == [
            f"r1d: no database in {missing} (start r1d serve or import tasks first)"], p.err
        assert p.stdout == b""
    assert not missing.exists()  # a reader creates nothing
    assert not (tmp_path / "x.jsonl").exists()


def test_bad_arguments(tmp_path):
    for args, needle in ((["tasks"], "expected import, export, list or stats"),
                         (["tasks", "frob"], "unknown action 'frob'"),
                         (["tasks", "import"], "expected one FILE"),
                         (["tasks", "import", str(tmp_path / "none.jsonl")], "none.jsonl"),
                         (["tasks", "list", "--limit", "-3"], "--limit"),
                         (["tasks", "export", "--split", "test"], "--split: expected train or eval"),
                         (["tasks", "stats", "-o", "x"], "takes no --out")):
        p = run(args + ["--data-dir", str(tmp_path / "d")] if len(args) > 1 else args)
        assert p.returncode == 2, (args, p.err)
        lines = p.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("r1d: ") and needle in lines[0], (args, p.err)


def test_gen_emits_tasks_that_import(tmp_path):
    p = run(["tasks", "gen", "multistep:2", "--count", "30", "--eval-count", "10", "--seed", "5"],
            check=True)
    rows = [json.loads(l) for l in p.out.splitlines()]
    assert len(rows) == 40 and [r["split"] for r in rows].count("eval") == 10
    assert len({r["prompt"] for r in rows}) == 40
    assert run(["tasks", "gen", "multistep:2", "--count", "30", "--eval-count", "10",
                "--seed", "5"]).out == p.out
    data = tmp_path / "data"
    r = run(["tasks", "import", "-", "--data-dir", str(data)], stdin=p.out)
    assert r.returncode == 0 and "imported 40 tasks, 0 bad lines" in r.out, r.err
    for args in (["nope"], ["addition:12"], [], ["addition", "--count", "x"]):
        r = run(["tasks", "gen"] + args)
        assert r.returncode == 2 and len(r.err.strip().splitlines()) == 1, (args, r.err)


# ---- tasks gen: formats, mix, import ----

def gen(*args, check=True):
    p = run(["tasks", "gen"] + [str(a) for a in args], check=check)
    return p if not check else [json.loads(l) for l in p.out.splitlines()]


def test_gen_tasks_carry_solutions_and_styles():
    rows = gen("addition:3", "--count", 20, "--eval-count", 5, "--seed", 3)
    assert len(rows) == 25
    for r in rows:
        a, b = (int(x) for x in r["prompt"][len("What is "):-1].split(" + "))
        assert r["prompt"] == f"What is {a} + {b}?"
        assert r["checker"] == {"type": "math", "answer": str(a + b)}
        assert r["solution"]["answer"] == str(a + b)
        lines = r["solution"]["thought"].split("\n")
        assert lines[-1] == f"so {a} + {b} = {a + b}" and len(lines) == 4
        assert lines[0].startswith(f"{a % 10} + {b % 10} = {a % 10 + b % 10}, write ")
    # plain prompts: the same problems, the old terse wording
    plain = gen("addition:3", "--count", 20, "--eval-count", 5, "--seed", 3, "--prompt-style", "plain")
    assert [r["checker"] for r in plain] == [r["checker"] for r in rows]
    assert all(p["prompt"] == r["prompt"][len("What is "):-1].replace(" ", "") + "="
               for p, r in zip(plain, rows))
    assert gen("addition:3:plain", "--count", 20, "--eval-count", 5, "--seed", 3) == plain
    # --split keeps one split
    assert gen("addition:3", "--count", 20, "--eval-count", 5, "--seed", 3, "--split", "eval") == rows[20:]
    for spec, start in (("multiply", "What is "), ("multistep", "What is "), ("countdown", "Use ")):
        r = gen(spec, "--count", 3, "--eval-count", 0)
        assert all(t["prompt"].startswith(start) and t["solution"]["thought"] for t in r), r


def test_gen_sft_rows_train(tiny_model, tmp_path):
    tasks = gen("multiply:3", "--count", 16, "--eval-count", 4, "--seed", 9)
    rows = gen("multiply:3", "--count", 16, "--eval-count", 4, "--seed", 9, "--format", "sft")
    assert len(rows) == 16  # the train split only
    thought_bytes = 0
    for r, t in zip(rows, tasks):
        assert r == {"messages": [
            {"role": "user", "content": t["prompt"]},
            {"role": "assistant", "content": "<think>\n" + t["solution"]["thought"] + "\n</think>\n\n"
                                             + t["solution"]["answer"]}]}
        thought_bytes += len(t["solution"]["thought"].encode())
    evals = gen("multiply:3", "--count", 16, "--eval-count", 4, "--seed", 9, "--format", "sft",
                "--split", "eval")
    assert [e["messages"][0]["content"] for e in evals] == [t["prompt"] for t in tasks[16:]]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    p = run(["sft", "--model", str(tiny_model), "--data", str(data), "--out", str(tmp_path / "o"),
             "--max-steps", "1", "--max-len", "256", "--threads", "1", "--progress", "json"])
    assert p.returncode == 0, p.err
    # the thoughts are learned: every one of their bytes carries loss
    m = re.search(r"16 documents, (\d+) tokens \((\d+) with loss\)", p.err)
    assert m, p.err
    assert int(m.group(2)) > thought_bytes


R1_ZERO_HEAD = ("A conversation between User and Assistant. The user asks a question, and the Assistant "
                "solves it. The assistant first thinks about the reasoning process in the mind and then "
                "provides the user with the answer. The reasoning process and answer are enclosed within "
                "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
                "process here </think> <answer> answer here </answer>. User: ")


def classify(doc, task):
    """The style a text document was written in, checked against its task."""
    prompt, sol = task["prompt"], task["solution"]
    if doc.startswith(R1_ZERO_HEAD):
        # the answer in its tags, or (a quarter of them) bare after </think>
        head = R1_ZERO_HEAD + prompt + ". Assistant: <think> "
        tagged = " </think> <answer> " + sol["answer"] + " </answer>"
        tail = tagged if doc.endswith(tagged) else " </think> " + sol["answer"]
        assert doc.startswith(head) and doc.endswith(tail), doc
        thought = doc[len(head):-len(tail)]
        bare = "-bare" if tail != tagged else ""
        if thought == sol["thought"]:
            return "zero" + bare
        if any("\u4e00" <= ch <= "\u9fff" for ch in thought):
            assert not re.search("[A-Za-z]", thought), thought
            return "zero-chinese" + bare
        assert "\n" not in thought and thought.startswith("I "), thought
        return "zero-short" + bare
    if doc == prompt + " " + sol["answer"]:
        return "direct"
    assert doc.startswith(prompt + "\n") and doc.endswith("\nAnswer: " + sol["answer"]), doc
    body = doc[len(prompt) + 1:-len("\nAnswer: " + sol["answer"])]
    if body == sol["thought"]:
        return "english"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body) and not re.search("[A-Za-z]", body), body
    return "chinese"


def test_gen_text_mix_and_pretrain(tiny_model, tmp_path):
    n = 400
    tasks = gen("addition", "--count", n, "--eval-count", 10, "--seed", 2, "--split", "train")
    docs = gen("addition", "--count", n, "--eval-count", 10, "--seed", 2, "--format", "text")
    assert len(docs) == n and all(set(d) == {"text"} for d in docs)
    styles = [classify(d["text"], t) for d, t in zip(docs, tasks)]
    count = {s: styles.count(s) for s in set(styles)}
    # the default mix 0.4 / 0.3 / 0.15 / 0.15 (4-sigma bounds); zero ones:
    # 40% short thoughts, 40% of the rest Chinese, a quarter bare answers
    for s, share in (("direct", 0.4), ("english", 0.3), ("chinese", 0.15)):
        assert abs(count[s] - share * n) < 4 * (share * (1 - share) * n) ** 0.5, count
    zero = [s for s in styles if s.startswith("zero")]
    assert abs(len(zero) - 0.15 * n) < 4 * (0.15 * 0.85 * n) ** 0.5, count
    assert {s.replace("-bare", "") for s in zero} == {"zero", "zero-short", "zero-chinese"}, count
    assert 0 < sum(s.endswith("-bare") for s in zero) < len(zero) / 2, count
    # the zero documents are the template's own rendering, byte for byte
    p = run(["template", "--model", str(tiny_model), "--template", "r1-zero"],
            stdin=json.dumps([{"role": "user", "content": tasks[0]["prompt"]}]) + "\n", check=True)
    assert json.loads(p.out) == R1_ZERO_HEAD + tasks[0]["prompt"] + ". Assistant:"
    # seeded; --mix picks the styles
    again = gen("addition", "--count", n, "--eval-count", 10, "--seed", 2, "--format", "text")
    assert again == docs
    only = gen("multistep", "--count", 30, "--eval-count", 0, "--format", "text", "--mix", "english=1,zero=0")
    mtasks = gen("multistep", "--count", 30, "--eval-count", 0)
    assert {classify(d["text"], t) for d, t in zip(only, mtasks)} == {"english"}
    plain = gen("addition", "--count", 5, "--eval-count", 0, "--format", "text", "--mix", "direct=1",
                "--prompt-style", "plain")
    assert all(re.fullmatch(r"\d+\+\d+=\d+", d["text"]) for d in plain), plain
    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[:40]), encoding="utf-8")
    p = run(["pretrain", "--model", str(tiny_model), "--data", str(data), "--out", str(tmp_path / "o"),
             "--max-steps", "1", "--max-len", "1024", "--threads", "1", "--progress", "json"])
    assert p.returncode == 0, p.err
    assert "40 documents" in p.err, p.err


def test_gen_bad_mix_and_options():
    for args, needle in ((["--mix", "direct=abc"], "--mix: direct"),
                         (["--mix", "bogus=1"], "unknown style 'bogus'"),
                         (["--mix", "direct"], "NAME=WEIGHT"),
                         (["--mix", "direct=-1"], "weight >= 0"),
                         (["--mix", "direct=0,zero=0"], "must not all be 0"),
                         (["--mix", "direct=1,direct=2"], "twice"),
                         (["--mix", "direct=nan"], "weight"),
                         (["--mix", ""], "must not all be 0")):
        p = run(["tasks", "gen", "addition", "--format", "text"] + args)
        assert p.returncode == 2 and p.out == "", (args, p.err)
        lines = p.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("r1d: ") and needle in lines[0], (args, p.err)
    for args, needle in ((["--format", "sft", "--mix", "direct=1"], "--mix is for --format text"),
                         (["--format", "csv"], "expected tasks, sft or text"),
                         (["--prompt-style", "fancy"], "natural or plain"),
                         (["--format", "sft", "--import"], "--import"),
                         (["--data-dir", "x"], "--data-dir goes with --import"),
                         (["--split", "test"], "train or eval"),
                         (["--count", "200"], "fewer than 400 distinct problems")):
        p = run(["tasks", "gen", "addition:1"] + args)
        assert p.returncode == 2 and p.out == "", (args, p.err)
        lines = p.err.splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, p.err)


def test_gen_import(tmp_path):
    data = tmp_path / "data"
    args = ["tasks", "gen", "countdown:3", "--count", "12", "--eval-count", "3", "--seed", "4"]
    p = run(args + ["--import", "--data-dir", str(data)])
    assert p.returncode == 0, p.err
    assert p.out == "imported 15 tasks, 0 bad lines (0 skipped)\n"
    stored = [json.loads(l) for l in export(data).decode().splitlines()]
    made = [json.loads(l) for l in run(args, check=True).out.splitlines()]
    assert [s["id"] for s in stored] == [m["id"] for m in made]
    assert all(s["solution"] == m["solution"] and s["prompt"] == m["prompt"] for s, m in zip(stored, made))
    p = run(["tasks", "list", "--data-dir", str(data), "--split", "eval"])
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()[1:]
    assert len(lines) == 3 and all(" countdown " in l and "Use " in l for l in lines), p.out
    # the same tasks again: every id is taken, nothing stored twice
    p = run(args + ["--import", "--data-dir", str(data)])
    assert p.returncode == 2 and p.out == "imported 0 tasks, 15 bad lines (0 skipped)\n"
    assert 'r1d: tasks gen:1: id "countdown3-s4-0" is already stored' in p.err
    p = run(["tasks", "gen", "addition:1", "--count", "5", "--eval-count", "0", "--split", "eval",
             "--import", "--data-dir", str(data)])
    assert p.returncode == 0 and p.out == "imported 0 tasks, 0 bad lines (0 skipped)\n", p.err
