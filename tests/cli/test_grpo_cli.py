"""`r1d grpo` end to end on the tiny random model: GRPO raises a rule reward
the random policy meets only sometimes (a completion containing a digit, a
regex checker), on training and held-out prompts; checkpoints load; the KL
and multi-iteration paths give finite metrics; a poisoned model stops with
a clear message; bad arguments and bad task lines are refused by name."""
import json
from pathlib import Path

from conftest import poison, run

# A digit somewhere in 16 tokens: ~25-45% of the random model's completions.
BASE = ["--num-generations", "8", "--prompts-per-step", "4", "--max-completion-length", "16",
        "--lr", "3e-3", "--threads", "2", "--progress", "json", "--seed", "3"]


def write_tasks(path, n_train=16, n_eval=8, pattern="[0-9]"):
    rows = [{"id": f"r{i}", "prompt": f"Say a number {i}",
             "checker": {"type": "regex", "pattern": pattern},
             "split": "eval" if i >= n_train else "train"} for i in range(n_train + n_eval)]
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def metrics(out):
    rows = [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "reward" in r], [r for r in rows if "eval_pass1" in r]


def test_grpo_raises_the_reward_and_writes_a_loadable_checkpoint(tiny_model, tmp_path):
    tasks = write_tasks(tmp_path / "t.jsonl")
    out = tmp_path / "out"
    p = run(["grpo", "--model", str(tiny_model), "--tasks", tasks, "--out", str(out),
             "--max-steps", "16", "--eval-every", "8", "--save-every", "8"] + BASE)
    assert p.returncode == 0, p.err
    assert "16 training tasks, 8 held-out tasks" in p.err
    train, evals = metrics(out)
    assert [r["step"] for r in train] == list(range(1, 17))
    assert [e["step"] for e in evals] == [0, 8, 16]
    first, last = evals[0], evals[-1]
    # held-out pass@1 rises by more than both 95% intervals
    assert first["eval_pass1"] < 0.6
    assert last["eval_pass1"] - first["eval_pass1"] > first["eval_pass1_ci95"] + last["eval_pass1_ci95"]
    # the gain paired task by task: the same difference, a narrower interval
    assert first["eval_gain"] == 0 and first["eval_gain_ci95"] == 0
    assert abs(last["eval_gain"] - (last["eval_pass1"] - first["eval_pass1"])) < 1e-5
    assert 0 < last["eval_gain_ci95"] <= first["eval_pass1_ci95"] + last["eval_pass1_ci95"] + 1e-6
    assert last["eval_gain"] > last["eval_gain_ci95"]
    early = sum(r["reward"] for r in train[:3]) / 3
    late = sum(r["reward"] for r in train[-3:]) / 3
    assert late > early + 0.2
    for r in train:
        assert r["groups"] == 4 and 0 <= r["flat_groups"] <= 4
        assert r["tokens"] > 0 and r["completion_len"] <= 16
        assert r["t_rollout"] > 0 and r["t_backward"] > 0 and r["rollout_tokens_per_s"] > 0
    assert (out / "checkpoint-8").is_dir() and (out / "checkpoint-16").is_dir()
    assert (out / "last").resolve() == (out / "checkpoint-16").resolve()
    state = json.loads((out / "last" / "trainer_state.json").read_text())
    assert state["kind"] == "grpo" and state["step"] == 16
    assert state["grpo"]["num_generations"] == 8
    g = run(["generate", "--model", str(out / "last"), "--prompt", "Say a number 3",
             "--max-tokens", "8", "--seed", "1", "--temperature", "0"])
    assert g.returncode == 0, g.err
    # the stdout (JSON lines) is the metrics file's lines
    assert len(p.out.splitlines()) == len(train) + len(evals)


def test_kl_iterations_and_reductions_give_finite_metrics(tiny_model, tmp_path):
    tasks = write_tasks(tmp_path / "t.jsonl")
    for loss in ("grpo", "dapo", "dr_grpo"):
        out = tmp_path / loss
        p = run(["grpo", "--model", str(tiny_model), "--tasks", tasks, "--out", str(out),
                 "--max-steps", "3", "--beta", "0.04", "--num-iterations", "2",
                 "--loss-type", loss, "--scale-rewards", "batch", "--epsilon-high", "0.28",
                 "--ref-refresh", "2", "--dynamic-sampling", "--eval-samples", "2"] + BASE)
        assert p.returncode == 0, p.err
        train, _ = metrics(out)
        assert len(train) == 3
        for r in train:
            for k in ("loss", "kl", "clip_ratio", "grad_norm", "reward"):
                assert isinstance(r[k], (int, float)) and abs(r[k]) < 1e6, (k, r)
            assert r["kl"] >= 0 and 0 <= r["clip_ratio"] <= 1
        # the second update of each batch moves the policy off the sampler
        assert any(r["kl"] > 0 for r in train[1:])


def test_a_nan_policy_stops_with_a_clear_message(model_copy, tmp_path):
    tasks = write_tasks(tmp_path / "t.jsonl")
    poison(model_copy)
    out = tmp_path / "out"
    p = run(["grpo", "--model", str(model_copy), "--tasks", tasks, "--out", str(out),
             "--max-steps", "2"] + BASE)
    assert p.returncode == 1, p.err
    assert "step 1:" in p.err and "not finite" in p.err and "no checkpoint" in p.err
    assert not list(out.glob("checkpoint-*"))


def test_bad_arguments_and_tasks(tiny_model, tmp_path):
    tasks = write_tasks(tmp_path / "t.jsonl")
    m = ["--model", str(tiny_model)]
    cases = [
        (m + ["--out", str(tmp_path / "o")], "--tasks FILE"),
        (m + ["--tasks", tasks, "--out", str(tmp_path / "o"), "--loss-type", "sum"], "--loss-type"),
        (m + ["--tasks", tasks, "--out", str(tmp_path / "o"), "--num-generations", "1"],
         "--num-generations"),
        (m + ["--tasks", tasks, "--out", str(tmp_path / "o"), "--temperature", "9"], "--temperature"),
        (m + ["--tasks", tasks, "--out", str(tmp_path / "o"), "--answer-style", "box"],
         "--answer-style"),
        (m + ["--tasks", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")],
         "missing.jsonl"),
    ]
    for args, needle in cases:
        p = run(["grpo"] + args)
        assert p.returncode == 2 and needle in p.err, (args, p.err)
        assert len(p.err.strip().splitlines()) == 1, p.err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(Path(tasks).read_text() + '{"id": "x", "prompt": "hi"}\nnot json\n')
    p = run(["grpo"] + m + ["--tasks", str(bad), "--out", str(tmp_path / "o")])
    assert p.returncode == 2
    assert "bad.jsonl:25:" in p.err and "bad.jsonl:26:" in p.err and "2 bad task lines" in p.err
    only_eval = write_tasks(tmp_path / "e.jsonl", n_train=0, n_eval=4)
    p = run(["grpo"] + m + ["--tasks", only_eval, "--out", str(tmp_path / "o")] + BASE)
    assert p.returncode == 2 and "no training tasks" in p.err
    p = run(["grpo"] + m + ["--tasks", tasks, "--out", str(tmp_path / "o"),
                            "--max-completion-length", "100000"] + BASE[:2])
    assert p.returncode == 2 and "context" in p.err, p.err


def test_generated_tasks(tiny_model, tmp_path):
    out = tmp_path / "gen"
    p = run(["grpo", "--model", str(tiny_model), "--task-gen", "countdown:3", "--task-count", "12",
             "--eval-count", "4", "--out", str(out), "--max-steps", "2", "--eval-samples", "1"]
            + BASE)
    assert p.returncode == 0, p.err
    assert "12 training tasks, 4 held-out tasks" in p.err
    train, evals = metrics(out)
    assert len(train) == 2 and evals[0]["eval_tasks"] == 4
    for args, needle in ((["--task-gen", "nope"], "unknown task generator"),
                         (["--task-gen", "addition:1", "--task-count", "100",
                           "--eval-count", "5"], "distinct"),
                         (["--task-gen", "addition", "--tasks", "x.jsonl"], "one of --tasks")):
        p = run(["grpo", "--model", str(tiny_model), "--out", str(tmp_path / "o")] + args)
        assert p.returncode == 2 and needle in p.err, (args, p.err)


def test_align_adds_the_reward_models_preference(tiny_model, tmp_path):
    """`r1d align`: GRPO plus W * sigmoid(score) of a reward model (here the
    untrained judge a plain model folder is) from --preference-start on, on
    the tasks and on --general prompts that have no checker."""
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"prompt": f"Say hello to {n}"}) + "\n"
                               for n in ("Ada", "Bob", "Cy")) + "\n")
    out = tmp_path / "aligned"
    p = run(["align", "--model", str(tiny_model), "--reward-model", str(tiny_model),
             "--task-gen", "addition:1", "--task-count", "16", "--eval-count", "4",
             "--general", str(general), "--out", str(out), "--max-steps", "4",
             "--prompts-per-step", "2", "--num-generations", "2",
             "--max-completion-length", "8", "--lr", "1e-4", "--preference-start", "0.5",
             "--reward-preference", "0.5", "--eval-samples", "1", "--progress", "json",
             "--threads", "2"])
    assert p.returncode == 0, p.err
    assert "19 training tasks" in p.err  # 16 generated + 3 general prompts
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [s for s in steps if "reward" in s]
    assert [("preference" in s) for s in train] == [False, False, True, True]
    assert all(0 < s["preference"] < 1 for s in train[2:])
    assert (out / "last" / "model.safetensors").exists()
    for args, needle in (([], "--reward-model RMDIR is required"),
                         (["--reward-model", str(tmp_path / "none")], "none"),
                         (["--reward-model", str(tiny_model), "--general", str(tmp_path / "g")],
                          "g")):
        q = run(["align", "--model", str(tiny_model), "--task-gen", "addition:1",
                 "--task-count", "8", "--eval-count", "2", "--out", str(tmp_path / "x")] + args)
        assert q.returncode == 2 and needle in q.err and q.err.count("\n") == 1, (args, q.err)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{\"prompt\": \"ok\"}\n[1]\n")
    q = run(["align", "--model", str(tiny_model), "--reward-model", str(tiny_model),
             "--task-gen", "addition:1", "--task-count", "8", "--eval-count", "2", "--general", str(bad),
             "--out", str(tmp_path / "x")])
    assert q.returncode == 2 and "bad.jsonl:2" in q.err, q.err
    q = run(["grpo", "--model", str(tiny_model), "--reward-model", str(tiny_model),
             "--task-gen", "addition:1", "--out", str(tmp_path / "x")])
    assert q.returncode == 2 and "belong to r1d align" in q.err
