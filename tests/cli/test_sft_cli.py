"""`r1d sft` and `r1d pretrain` on the tiny random model: data formats and bad
lines, the checkpoint folder (loadable by `r1d generate`), exact resume, the
NaN stop, eval split, pretraining on text, argument errors."""
import hashlib
import json
import resource
import shutil
import signal
from pathlib import Path

from conftest import poison, read_json, run

BASE = ["--max-len", "128", "--max-tokens", "256", "--lr", "1e-3", "--threads", "2"]


def sft_rows(n=48):
    rows = []
    for i in range(n):
        a, b = 3 + i % 11, 5 + (i * 7) % 13
        if i % 3 == 0:
            rows.append({"prompt": f"What is {a} + {b}?", "completion": f" {a + b}"})
        else:
            rows.append({"messages": [
                {"role": "user", "content": f"What is {a} + {b}?"},
                {"role": "assistant", "reasoning_content": f"{a} plus {b} is {a + b}.",
                 "content": f"The answer is {a + b}."}]})
    return [json.dumps(r) for r in rows]


def write_data(path, lines):
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def metrics(out):
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    train = {m["step"]: m["loss"] for m in lines if "loss" in m}
    evals = {m["step"]: m["eval_loss"] for m in lines if "eval_loss" in m}
    return train, evals


def test_sft_trains_reports_and_writes_a_loadable_checkpoint(tiny_model, tmp_path):
    lines = sft_rows()
    lines.insert(4, "{not json")
    lines.insert(7, json.dumps({"messages": [{"role": "user", "content": "no reply"}]}))
    data = write_data(tmp_path / "d.jsonl", lines)
    out = tmp_path / "out"
    p = run(["sft", "--model", str(tiny_model), "--data", data, "--out", str(out),
             "--epochs", "3", "--eval-split", "0.1", "--save-every", "5", "--save-limit", "2"] + BASE)
    assert p.returncode == 0, p.err
    # bad lines by number, then the counts
    assert f"{data}:5: invalid JSON" in p.err
    assert f"{data}:8: the conversation must end with an assistant message" in p.err
    assert "2 bad lines skipped" in p.err
    train, evals = metrics(p.out)
    steps = sorted(train)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 6
    assert train[steps[-1]] < train[1] - 0.5  # it learns
    assert steps[-1] in evals
    # the newest two checkpoints are kept; last points to the final one
    names = sorted(d.name for d in out.iterdir() if d.name.startswith("checkpoint-"))
    assert len(names) == 2
    last = (out / "last").resolve()
    assert last.name == f"checkpoint-{steps[-1]}"
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "trainer_state.json", "optimizer.bin"]:
        assert (last / f).is_file(), f
    state = read_json(last / "trainer_state.json")
    assert state["step"] == steps[-1] and state["kind"] == "sft"
    assert abs(state["loss"] - train[steps[-1]]) < 1e-6
    assert not list(out.glob("*.tmp-*"))
    # metrics.jsonl holds the same lines as stdout
    assert metrics((out / "metrics.jsonl").read_text()) == (train, evals)
    # r1d itself loads the result
    g = run(["generate", "--model", str(out / "last"), "--prompt", "What is 3 + 5?",
             "--max-tokens", "8", "--temperature", "0"])
    assert g.returncode == 0, g.err


def test_exact_resume_replays_the_same_losses(tiny_model, tmp_path):
    data = write_data(tmp_path / "d.jsonl", sft_rows())
    args = ["sft", "--model", str(tiny_model), "--data", data, "--epochs", "2",
            "--grad-accum", "2", "--save-every", "3", "--eval-split", "0.1"] + BASE
    a = run(args + ["--out", str(tmp_path / "a")], check=True)
    full_train, full_eval = metrics(a.out)
    # a run that stopped after step 3: its checkpoint, then --resume
    b_out = tmp_path / "b"
    b_out.mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-3", b_out / "checkpoint-3")
    (b_out / "last").symlink_to("checkpoint-3")
    b = run(args + ["--out", str(b_out), "--resume"], check=True)
    assert "resuming from" in b.err
    train, evals = metrics(b.out)
    assert min(train) == 4 and max(train) == max(full_train)
    for step, loss in train.items():
        assert loss == full_train[step], (step, loss, full_train[step])
    for step, loss in evals.items():
        assert loss == full_eval[step]
    # resuming with other data is refused, naming what differs
    other = write_data(tmp_path / "o.jsonl", sft_rows(30))
    c = run(args[:4] + [other] + args[5:] + ["--out", str(b_out), "--resume"])
    assert c.returncode == 2 and "resume: docs differs" in c.err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_model, model_copy, tmp_path):
    data = write_data(tmp_path / "d.jsonl", sft_rows(24))
    poison(model_copy)
    out = tmp_path / "out"
    p = run(["sft", "--model", str(model_copy), "--data", data, "--out", str(out)] + BASE)
    assert p.returncode == 1
    assert "step 1: the loss is nan; stopped" in p.err and "no checkpoint" in p.err
    assert not list(out.glob("checkpoint-*"))
    # from a good checkpoint whose weights then go bad: the run names it and
    # leaves it (and last) as they were
    good = tmp_path / "good"
    run(["sft", "--model", str(tiny_model), "--data", data, "--out", str(good),
         "--max-steps", "2"] + BASE, check=True)
    ck = good / "checkpoint-2"
    before = (ck / "model.safetensors").read_bytes()
    poison(ck)
    p = run(["sft", "--model", str(tiny_model), "--data", data, "--out", str(good),
             "--max-steps", "4", "--resume"] + BASE)
    assert p.returncode == 1
    assert "step 3: the loss is nan" in p.err and str(ck) in p.err
    assert (good / "last").resolve() == ck.resolve()
    assert not (good / "checkpoint-3").exists()
    assert len(before) == len((ck / "model.safetensors").read_bytes())


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tiny_model, tmp_path):
    """A checkpoint write that runs out of space (a file-size limit stands in
    for a full disk: writes past it fail with EFBIG, as ENOSPC would) stops
    the run with a message, leaves the previous checkpoint and `last` as they
    were, and no half-written folder behind."""
    data = write_data(tmp_path / "d.jsonl", sft_rows(24))
    out = tmp_path / "out"
    args = ["sft", "--model", str(tiny_model), "--data", data, "--out", str(out),
            "--save-every", "2"] + BASE
    run(args + ["--max-steps", "2"], check=True)
    ck = out / "checkpoint-2"
    before = {f.name: f.read_bytes() for f in ck.iterdir()}
    limit = len(before["model.safetensors"]) // 2

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = run(args + ["--max-steps", "4", "--resume"], preexec_fn=small_disk)
    assert p.returncode == 1, p.err
    assert "checkpoint" in p.err and "step 4" in p.err, p.err
    assert (out / "last").resolve() == ck.resolve()
    assert {f.name: f.read_bytes() for f in ck.iterdir()} == before
    assert not (out / "checkpoint-4").exists()
    assert not list(out.glob("*.tmp*")), list(out.iterdir())
    # the same run with room to spare goes on from the intact checkpoint
    q = run(args + ["--max-steps", "4", "--resume"], check=True)
    assert "resuming from" in q.err
    assert (out / "last").resolve().name == "checkpoint-4"


def test_strict_and_truncation(tiny_model, tmp_path):
    lines = sft_rows(12)
    lines.insert(2, "[1, 2]")
    data = write_data(tmp_path / "d.jsonl", lines)
    p = run(["sft", "--model", str(tiny_model), "--data", data, "--out", str(tmp_path / "s"),
             "--strict"] + BASE)
    assert p.returncode == 2
    assert f"{data}:3: a line must be a JSON object" in p.err
    assert not (tmp_path / "s" / "last").exists()
    long = [json.dumps({"prompt": "go", "completion": " " + "x y z " * 60})]
    data = write_data(tmp_path / "l.jsonl", long + sft_rows(6))
    p = run(["sft", "--model", str(tiny_model), "--data", data, "--out", str(tmp_path / "t"),
             "--max-steps", "1"] + BASE)
    assert p.returncode == 0, p.err
    assert "1 truncated" in p.err


def test_pretrain_on_text(tiny_model, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    out = tmp_path / "p"
    p = run(["pretrain", "--model", str(tiny_model), "--text", str(text), "--out", str(out),
             "--max-len", "64", "--epochs", "4", "--lr", "3e-3", "--threads", "2"])
    assert p.returncode == 0, p.err
    assert "0 truncated" in p.err  # split, not cut
    train, _ = metrics(p.out)
    assert train[max(train)] < train[1] - 1.0
    assert read_json(out / "last" / "trainer_state.json")["kind"] == "pretrain"
    bad = write_data(tmp_path / "b.jsonl", [json.dumps({"prompt": "a", "completion": "b"})])
    p = run(["pretrain", "--model", str(tiny_model), "--data", bad, "--out", str(out)])
    assert p.returncode == 2 and "pretraining takes" in p.err


def test_argument_errors(tiny_model, tmp_path):
    data = write_data(tmp_path / "d.jsonl", sft_rows(6))
    m = ["--model", str(tiny_model)]
    cases = [
        (["sft"] + m + ["--data", data], "--out DIR is required"),
        (["sft"] + m + ["--out", str(tmp_path / "o")], "--data FILE.jsonl is required"),
        (["sft"] + m + ["--data", data, "--out", "x", "--lr", "fast"], "--lr: expected a number"),
        (["sft"] + m + ["--data", data, "--out", "x", "--schedule", "step"], "cosine or constant"),
        (["sft"] + m + ["--data", data, "--out", "x", "--max-len", "64", "--max-tokens", "32"],
         "below --max-len"),
        (["sft"] + m + ["--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")],
         "missing.jsonl"),
        (["pretrain"] + m + ["--out", "x"], "one of --text FILE or --data"),
    ]
    for args, says in cases:
        p = run(args)
        assert p.returncode == 2, (args, p.err)
        assert says in p.err, (args, p.err)
        assert len(p.err.strip().splitlines()) == 1, p.err
    empty = write_data(tmp_path / "e.jsonl", ["{\"x\": 1}"])
    p = run(["sft"] + m + ["--data", empty, "--out", str(tmp_path / "o")])
    assert p.returncode == 2 and "no usable training example" in p.err


def test_data_dir_registers_each_checkpoint_with_its_lineage(tiny_model, tmp_path):
    data = write_data(tmp_path / "d.jsonl", sft_rows())
    dd, out = tmp_path / "data", tmp_path / "out"
    args = ["sft", "--model", str(tiny_model), "--data", data, "--out", str(out),
            "--max-steps", "6", "--save-every", "3", "--eval-split", "0.1",
            "--eval-every", "3", "--data-dir", str(dd)] + BASE
    p = run(args)
    assert p.returncode == 0, p.err
    train, evals = metrics(p.out)
    ls = run(["checkpoints", "list", "--json", "--data-dir", str(dd)], check=True)
    recs = [json.loads(l) for l in ls.out.splitlines()]
    assert [r["step"] for r in recs] == [6, 3]  # newest first
    new, old = recs
    assert old["parent"] is None and new["parent"] == old["version"]
    assert p.err.rstrip().endswith(f"registered as {new['version']}")
    for r in recs:
        assert r["kind"] == "sft" and r["status"] == "candidate"
        assert r["path"] == str((out / f"checkpoint-{r['step']}").resolve())
        assert r["base"] == str(tiny_model)
        assert abs(r["train_loss"] - train[r["step"]]) < 1e-6
        assert abs(r["eval_loss"] - evals[r["step"]]) < 1e-6
        names = [f["name"] for f in r["files"]]
        assert "model.safetensors" in names and "optimizer.bin" not in names
        weights = next(f for f in r["files"] if f["name"] == "model.safetensors")
        body = (Path(r["path"]) / "model.safetensors").read_bytes()
        assert weights["bytes"] == len(body)
        assert weights["sha256"] == hashlib.sha256(body).hexdigest()
    table = run(["checkpoints", "list", "--data-dir", str(dd)], check=True).out
    assert table.splitlines()[0].split()[:4] == ["VERSION", "STATUS", "KIND", "STEP"]
    shown = run(["checkpoints", "show", str(out / "last"), "--data-dir", str(dd)], check=True)
    assert json.loads(shown.out)["version"] == new["version"]
    v = run(["checkpoints", "verify", new["version"], "--data-dir", str(dd)])
    assert v.returncode == 0 and "files match" in v.out, v.err
    # a changed config is caught, naming the file
    cfg = Path(new["path"]) / "config.json"
    cfg.write_text(cfg.read_text().replace("{", "{ ", 1))
    v = run(["checkpoints", "verify", new["version"], "--data-dir", str(dd)])
    assert v.returncode == 1 and "config.json" in v.err
    # a run from a registered checkpoint names it as the parent
    p2 = run(["sft", "--model", old["path"], "--data", data, "--out", str(tmp_path / "o2"),
              "--max-steps", "1", "--data-dir", str(dd)] + BASE)
    assert p2.returncode == 0, p2.err
    top = json.loads(run(["checkpoints", "list", "--json", "--limit", "1",
                          "--data-dir", str(dd)], check=True).out)
    assert top["parent"] == old["version"] and top["step"] == 1


def test_checkpoints_command_errors(tmp_path):
    cases = [
        (["checkpoints", "list", "--data-dir", str(tmp_path / "none")], 2, "no database in"),
        (["checkpoints", "frobnicate"], 2, "unknown command 'frobnicate'"),
        (["checkpoints", "show"], 2, "give one VERSION or PATH"),
        (["checkpoints", "list", "--limit", "many"], 2, "--limit: expected"),
    ]
    for args, code, says in cases:
        p = run(args)
        assert p.returncode == code and says in p.err, (args, p.returncode, p.err)
        assert len(p.err.strip().splitlines()) == 1, p.err


def test_device_trainer_on_the_cpu_table_matches_the_host_trainer(tiny_model, tmp_path):
    """--backend cpu-ops runs the CUDA path's code (engine/model/train_device.c
    through the ops table) on the CPU: same losses as the host trainer, same
    exact resume, a loadable checkpoint."""
    data = write_data(tmp_path / "d.jsonl", sft_rows())
    args = ["sft", "--model", str(tiny_model), "--data", data, "--epochs", "2",
            "--grad-accum", "2", "--save-every", "3", "--eval-split", "0.1"] + BASE
    host = run(args + ["--out", str(tmp_path / "host")], check=True)
    dev = run(args + ["--out", str(tmp_path / "dev"), "--backend", "cpu-ops"], check=True)
    h_train, h_eval = metrics(host.out)
    d_train, d_eval = metrics(dev.out)
    assert sorted(h_train) == sorted(d_train) and len(d_train) >= 6
    for step in h_train:
        assert abs(h_train[step] - d_train[step]) < 1e-4, (step, h_train[step], d_train[step])
    for step in h_eval:
        assert abs(h_eval[step] - d_eval[step]) < 1e-4
    assert d_train[max(d_train)] < d_train[1] - 0.5
    # exact resume on the device path: moments went to optimizer.bin and back
    b_out = tmp_path / "b"
    b_out.mkdir()
    shutil.copytree(tmp_path / "dev" / "checkpoint-3", b_out / "checkpoint-3")
    (b_out / "last").symlink_to("checkpoint-3")
    b = run(args + ["--out", str(b_out), "--resume", "--backend", "cpu-ops"], check=True)
    train, evals = metrics(b.out)
    assert min(train) == 4
    for step, loss in train.items():
        assert loss == d_train[step], (step, loss, d_train[step])
    for step, loss in evals.items():
        assert loss == d_eval[step]
    g = run(["generate", "--model", str(tmp_path / "dev" / "last"), "--prompt", "What is 3 + 5?",
             "--max-tokens", "4", "--temperature", "0"])
    assert g.returncode == 0, g.err


def test_backend_arguments(tiny_model, tmp_path):
    data = write_data(tmp_path / "d.jsonl", sft_rows(8))
    m = ["sft", "--model", str(tiny_model), "--data", data, "--out", str(tmp_path / "o"),
         "--max-steps", "1"] + BASE
    for extra, says in [(["--backend", "tpu"], "cpu, cuda or cpu-ops, not 'tpu'"),
                        (["--tf32"], "--tf32 needs --backend cuda")]:
        p = run(m + extra)
        assert p.returncode == 2 and says in p.err, p.err
    p = run(m + ["--backend", "cuda"])
    if p.returncode == 0:  # a machine with a GPU trained on it
        assert (tmp_path / "o" / "last" / "model.safetensors").is_file()
    else:
        assert p.returncode == 1 and "--backend cuda:" in p.err, p.err
        assert len(p.err.strip().splitlines()) <= 4, p.err


def test_recompute_gives_the_same_losses(tiny_model, tmp_path):
    data = write_data(tmp_path / "d.jsonl", sft_rows(24))
    args = ["sft", "--model", str(tiny_model), "--data", data, "--epochs", "2",
            "--eval-split", "0.1"] + BASE
    plain = metrics(run(args + ["--out", str(tmp_path / "a")], check=True).out)
    again = metrics(run(args + ["--out", str(tmp_path / "b"), "--recompute"], check=True).out)
    assert plain == again and len(plain[0]) >= 2
    p = run(args + ["--out", str(tmp_path / "c"), "--recompute", "--backend", "cpu-ops"])
    assert p.returncode == 2 and "--recompute: only with --backend cpu" in p.err, p.err
