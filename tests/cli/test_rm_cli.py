"""`r1d rm` (reward model training), `r1d rm score` and `r1d logs export
--format pairs`:
 - training on a synthetic, learnable preference (polite finished answers
   beat bare ones) reports held-out accuracy above 0.9, writes the folder
   (reward_model.json, rm_state.json, metrics.jsonl) and `rm score` ranks a
   chosen answer above its rejected twin, one {"score"} line per row;
 - a data dir filled through a live `r1d serve` (chat answers, then
   POST /v1/feedback with ratings and a preferred text) exports the right
   pairs and trains with --data-dir;
 - bad input: one-line errors, exit status 2."""
import json
import random
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from conftest import R1D, read_json, run

WORDS = ("river stone cloud apple green quick lamp north paper silver music "
         "storm garden bread winter glass horse candle ocean tiger").split()


def synth_pairs(path, n, seed):
    r = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            base = " ".join(r.choice(WORDS) for _ in range(3))
            f.write(json.dumps({"prompt": f"Tell me about {r.choice(WORDS)}.",
                                "chosen": f"please {base}.", "rejected": base}) + "\n")


def test_rm_trains_and_scores(tiny_model, tmp_path):
    data, held = tmp_path / "pairs.jsonl", tmp_path / "eval.jsonl"
    synth_pairs(data, 96, 1)
    synth_pairs(held, 40, 2)
    out = tmp_path / "rm"
    p = run(["rm", "--model", str(tiny_model), "--data", str(data), "--eval-data", str(held),
             "--out", str(out), "--lr", "1e-3", "--max-steps", "30", "--batch", "8",
             "--threads", "2", "--json"])
    assert p.returncode == 0, p.err
    summary = json.loads(p.out)
    assert summary["steps"] == 30 and summary["train_pairs"] == 96 and summary["eval_pairs"] == 40
    after = summary["eval_after"]
    assert after["accuracy"] > 0.9, summary
    assert 0 <= after["lo"] <= after["accuracy"] <= after["hi"] <= 1
    # a random judge may already lean the right way on so simple a cue: that
    # it learned shows in the held-out loss and margin
    before = summary["eval_before"]
    assert after["loss"] < 0.5 * before["loss"] and after["margin"] > before["margin"] + 1, summary
    assert "eval at step 0" in p.err and "eval at step 30" in p.err

    rmj = read_json(out / "reward_model.json")
    assert rmj["kind"] == "lm-judge" and rmj["good_token"] != rmj["bad_token"]
    assert rmj["suffix"] == "\nGood answer?"
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    state = read_json(out / "rm_state.json")
    assert state["steps"] == 30 and state["eval_after"]["accuracy"] == after["accuracy"]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert [x["step"] for x in steps] == list(range(1, 31))
    assert all({"accuracy", "margin", "lr", "grad_norm"} <= set(x) for x in steps)
    assert [x["step"] for x in lines if "eval_accuracy" in x] == [0, 30]

    # score: one line per row, in order; the thought is not scored
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "Tell me about salt.", "completion": "please river lamp glass."},
        {"prompt": "Tell me about salt.", "completion": "river lamp glass"},
        {"prompt": [{"role": "user", "content": "Tell me about salt."}],
         "completion": "thinking...</think>\n\nplease river lamp glass."},
        {"completion": "no prompt at all"},
    ]) + "\n")
    p = run(["rm", "score", "--model", str(out), "--data", str(rows)])
    assert p.returncode == 0, p.err
    scores = [json.loads(x)["score"] for x in p.out.splitlines()]
    assert len(scores) == 4
    assert scores[0] > scores[1]
    assert scores[2] == scores[0]  # same rendering: a string prompt is one user message
    # deterministic
    again = run(["rm", "score", "--model", str(out), "--data", str(rows), "--batch", "1"])
    assert [json.loads(x)["score"] for x in again.out.splitlines()] == scores

    # --out over the finished reward model is allowed (training it further)
    p = run(["rm", "--model", str(out), "--data", str(data), "--out", str(out),
             "--max-steps", "2", "--threads", "2"])
    assert p.returncode == 0, p.err
    assert "train accuracy" in p.out or "eval accuracy" in p.out


class Serve:
    """A `r1d serve` on a free port logging into data_dir."""

    def __init__(self, model, data_dir):
        self.proc = subprocess.Popen(
            [R1D, "serve", "--model", str(model), "--host", "127.0.0.1", "--port", "0",
             "--threads", "2", "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = None
        ready = threading.Event()

        def drain():
            for line in self.proc.stderr:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "listening":
                    self.port = ev["port"]
                    ready.set()
        threading.Thread(target=drain, daemon=True).start()
        assert ready.wait(60), "r1d serve did not start"

    def post(self, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def test_pairs_from_logged_feedback(tiny_model, tmp_path):
    data_dir = tmp_path / "data"
    s = Serve(tiny_model, data_dir)
    try:
        for _ in range(100):  # /ready: the model is loaded
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{s.port}/ready", timeout=5)
                break
            except OSError:
                time.sleep(0.1)

        def ask(question, seed):
            return s.post("/v1/chat/completions", {
                "model": "tiny", "messages": [{"role": "user", "content": question}],
                "max_tokens": 6, "seed": seed, "temperature": 1.0,
                "reasoning_effort": "none"})

        a = ask("Capital of France?", 1)
        b, c = ask("2+2?", 2), ask("2+2?", 3)
        lone = ask("Lonely?", 4)
        s.post("/v1/feedback", {"id": a["id"], "rating": -1, "preferred": "Paris."})
        s.post("/v1/feedback", {"id": b["id"], "rating": 1})
        s.post("/v1/feedback", {"id": c["id"], "rating": -1})
        s.post("/v1/feedback", {"id": lone["id"], "rating": 1})
        s.post("/v1/feedback", {"id": lone["id"], "comment": "ok"})
    finally:
        s.stop()
    answer = lambda r: r["choices"][0]["message"]["content"]  # noqa: E731
    assert answer(b) != answer(c)

    out = tmp_path / "pairs.jsonl"
    p = run(["logs", "export", "--format", "pairs", "--data-dir", str(data_dir), "-o", str(out)])
    assert p.returncode == 0, p.err
    assert "exported 2 pairs (1 from preferred texts, 1 from ratings)" in p.err
    pairs = [json.loads(x) for x in out.read_text().splitlines()]
    pref = [x for x in pairs if x["source"] == "preferred"]
    rated = [x for x in pairs if x["source"] == "ratings"]
    assert len(pref) == 1 and len(rated) == 1
    assert pref[0] == {"prompt": [{"role": "user", "content": "Capital of France?"}],
                       "chosen": "Paris.", "rejected": answer(a), "source": "preferred",
                       "ids": [a["id"]]}
    assert rated[0]["chosen"] == answer(b) and rated[0]["rejected"] == answer(c)
    assert rated[0]["ids"] == [b["id"], c["id"]] and rated[0]["ratings"] == [1, -1]
    p = run(["logs", "export", "--format", "pairs", "--max-pairs", "1",
             "--data-dir", str(data_dir)])
    assert p.returncode == 0 and len(p.out.splitlines()) == 1

    # the exported file and the data dir train alike
    for src in (["--data", str(out)], ["--data-dir", str(data_dir)]):
        rm_out = tmp_path / ("rm" + src[0])
        p = run(["rm", "--model", str(tiny_model), *src, "--out", str(rm_out),
                 "--max-steps", "2", "--batch", "2", "--threads", "2", "--json"])
        assert p.returncode == 0, p.err
        summary = json.loads(p.out)
        assert summary["train_pairs"] == 2 and summary["steps"] == 2
        assert (rm_out / "reward_model.json").exists()


def test_rm_bad_input(tiny_model, tmp_path):
    good = tmp_path / "good.jsonl"
    synth_pairs(good, 4, 3)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": "x"}\nnot json\n')
    cases = [
        (["rm", "--data", str(good), "--out", str(tmp_path / "o")], "--model DIR is required"),
        (["rm", "--model", str(tiny_model), "--out", str(tmp_path / "o")], "--data"),
        (["rm", "--model", str(tiny_model), "--data", str(good)], "--out DIR is required"),
        (["rm", "--model", str(tiny_model), "--data", str(good), "--out", str(tmp_path / "o"),
          "--lr", "abc"], "--lr"),
        (["rm", "--model", str(tiny_model), "--data", str(good), "--out", str(tmp_path / "o"),
          "--eval-data", str(good), "--eval-fraction", "0.2"], "not both"),
        (["rm", "--model", str(tiny_model), "--data", str(tmp_path / "missing.jsonl"),
          "--out", str(tmp_path / "o")], "missing.jsonl"),
        (["rm", "--model", str(tmp_path / "nomodel"), "--data", str(good),
          "--out", str(tmp_path / "o")], "nomodel"),
        (["rm", "--model", str(tiny_model), "--data", str(bad), "--strict",
          "--out", str(tmp_path / "o")], "2: "),
        (["rm", "--model", str(tiny_model), "--data", str(good), "--out", str(tiny_model)],
         "not a reward model folder"),
        (["rm", "score", "--model", str(tiny_model)], "required"),
        (["logs", "export", "--format", "pairs", "--since", "1h",
          "--data-dir", str(tmp_path)], "--since"),
        (["logs", "export", "--format", "nope", "--data-dir", str(tmp_path)], "--format"),
    ]
    for args, needle in cases:
        p = run(args)
        assert p.returncode == 2, (args, p.returncode, p.err)
        assert p.out == "", (args, p.out)
        assert needle in p.err, (args, p.err)
        assert p.err.count("\n") == 1, (args, p.err)
    assert not (tmp_path / "o").exists()

    # non-strict: bad lines are reported with their numbers and skipped
    p = run(["rm", "--model", str(tiny_model), "--data", str(bad), "--out", str(tmp_path / "o2"),
             "--max-steps", "1", "--threads", "2"])
    assert p.returncode == 0, p.err
    assert f"{bad}:2:" in p.err and f"{bad}:3:" in p.err

    # score: a malformed row names its line
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"completion": "ok"}\n{"prompt": 3, "completion": "x"}\n')
    p = run(["rm", "score", "--model", str(tiny_model), "--data", str(rows)])
    assert p.returncode == 2 and f"{rows}:2:" in p.err
