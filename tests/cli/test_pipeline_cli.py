"""`r1d pipeline`: the recipe runner's rules on small recipes (order, resume,
re-running what changed, failures, bad recipes), and the shipped R1 recipe
itself, shortened to a few steps per stage, end to end: every stage must
leave a loadable model and finite metrics and evaluation rows."""
import json
import math
import os
from pathlib import Path

import pytest

from conftest import run

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "models" / "r1d-tiny" / "recipe.json"

# The shipped recipe at a size CI affords: every stage runs, a few steps each.
SHORT = {
    "n_train": 300, "n_eval": 6, "n_cold": 24, "n_rs": 8, "vocab": 300,
    "pretrain_epochs": 0.05, "student_epochs": 0.05, "rl_steps": 2,
    "rl_prompts": 2, "rl_group": 2, "rl_eval_every": 0, "cold_epochs": 0.5,
    "rs_k": 2, "rs_epochs": 1, "rm_steps": 2, "align_steps": 2, "distill_k": 2,
    "distill_epochs": 1, "student_rl_steps": 2, "eval_k": 2, "max_len": 24,
    # a random teacher keeps no sample: give the student rows to learn from
    "distill_extra": "--mix-in={out}/data-cold/cold.jsonl",
}


def write_recipe(path, stages, vars_=None, **extra):
    recipe = {"vars": vars_ or {}, "stages": stages}
    recipe.update(extra)
    path.write_text(json.dumps(recipe))
    return path


def small_recipe(tmp_path, gen_count=5, bad=False):
    stages = [
        {"name": "gen", "cmd": ["tasks", "gen", "addition:2", "--count", "{n}",
                                "--eval-count", "0"], "stdout": "{dir}/t.jsonl"},
        {"name": "base", "cmd": ["model", "init", "--preset", "tiny", "--seed", "3",
                                 "--out", "{dir}"], "model": "{dir}"},
        {"name": "again", "cmd": ["model", "info", "--model", "{base}"]},
    ]
    if bad:
        stages.append({"name": "broken", "cmd": ["tasks", "gen", "nosuch"]})
    return write_recipe(tmp_path / "recipe.json", stages, {"n": gen_count})


def state(out):
    return {s["name"]: s for s in json.loads((out / "pipeline.json").read_text())["stages"]}


def test_runs_in_order_and_resumes(tmp_path):
    out = tmp_path / "out"
    recipe = small_recipe(tmp_path)
    p = run(["pipeline", str(recipe), "--out", str(out)])
    assert p.returncode == 0, p.err
    st = state(out)
    assert [s["status"] for s in st.values()] == ["done"] * 3
    assert len((out / "gen" / "t.jsonl").read_text().splitlines()) == 5
    assert (out / "base" / "config.json").exists()
    # a second run skips everything
    p = run(["pipeline", str(recipe), "--out", str(out)])
    assert p.returncode == 0 and p.err.count("done before, skipped") == 3, p.err
    # changing a var re-runs the stage that uses it and every stage after it
    p = run(["pipeline", str(recipe), "--out", str(out), "--set", "n=7", "--dry-run"])
    assert p.returncode == 0
    assert "gen: runs" in p.out and "again: runs" in p.out, p.out
    p = run(["pipeline", str(recipe), "--out", str(out), "--set", "n=7"])
    assert p.returncode == 0, p.err
    assert "done before" not in p.err
    assert len((out / "gen" / "t.jsonl").read_text().splitlines()) == 7


def test_a_failing_stage_stops_and_resumes_after_the_fix(tmp_path):
    out = tmp_path / "out"
    p = run(["pipeline", str(small_recipe(tmp_path, bad=True)), "--out", str(out)])
    assert p.returncode == 1
    assert "stage broken failed" in p.err and "log.txt" in p.err
    assert "unknown task generator" in (out / "broken" / "log.txt").read_text()
    st = state(out)
    assert st["base"]["status"] == "done" and st["broken"]["status"] != "done"
    p = run(["pipeline", str(small_recipe(tmp_path)), "--out", str(out)])
    assert p.returncode == 0 and p.err.count("done before, skipped") == 3, p.err


def test_bad_recipes_are_refused(tmp_path):
    out = str(tmp_path / "out")
    cases = [
        ({"stages": []}, "non-empty array"),
        ({"stages": [{"name": "a b", "cmd": ["version"]}]}, "needs a \"name\""),
        ({"stages": [{"name": "a", "cmd": ["version"]}, {"name": "a", "cmd": ["version"]}]},
         "two stages named a"),
        ({"stages": [{"name": "a", "cmd": ["model", "info", "--model", "{nothing}"]}]},
         "{nothing} is neither"),
        ({"stages": [{"name": "a", "cmd": "version"}]}, "\"cmd\" must be an array"),
        ({"stages": [{"name": "a", "cmd": ["model", "info", "--model", "{b}"]},
                     {"name": "b", "cmd": ["version"], "model": "{dir}"}]}, "{b} is neither"),
        # the eval's arguments are checked before any stage runs
        ({"eval": ["--k", "{kk}"], "stages": [{"name": "a", "cmd": ["version"],
                                               "model": "{dir}"}]}, "{kk} is neither"),
        ({"stages": [{"name": "a", "cmd": ["version"], "eval": "yes"}]},
         "\"eval\" must be an array or false"),
        ({"eval": "all", "stages": [{"name": "a", "cmd": ["version"]}]}, "\"eval\" must be an array"),
    ]
    for i, (recipe, msg) in enumerate(cases):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(recipe))
        p = run(["pipeline", str(path), "--out", out])
        assert p.returncode == 2 and msg in p.err and p.err.count("\n") == 1, (recipe, p.err)
    path = tmp_path / "broken.json"
    path.write_text("{\"stages\": [")
    p = run(["pipeline", str(path), "--out", out])
    assert p.returncode == 2 and "broken.json:" in p.err
    p = run(["pipeline", str(small_recipe(tmp_path)), "--out", out, "--set", "zzz=1"])
    assert p.returncode == 2 and "no such var" in p.err
    p = run(["pipeline", str(small_recipe(tmp_path)), "--out", out, "--only", "nope"])
    assert p.returncode == 2 and "no stage nope" in p.err
    p = run(["pipeline", str(small_recipe(tmp_path))])
    assert p.returncode == 2


def finite_numbers(obj):
    if isinstance(obj, dict):
        return all(finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(finite_numbers(v) for v in obj)
    if isinstance(obj, float):
        return math.isfinite(obj)
    return True


@pytest.mark.skipif(os.environ.get("R1D_ASAN") == "1",
                    reason="ten training stages under ASan take minutes; every command "
                           "they run has its own tests there")
def test_the_shipped_recipe_shortened(tmp_path):
    """Every stage of the R1 recipe (pretrain, R1-Zero, cold start, reasoning
    RL, rejection sampling + SFT, reward model, alignment RL, student
    pretraining, distillation, student GRPO) on a few steps each."""
    out = tmp_path / "run"
    args = ["pipeline", str(RECIPE), "--out", str(out)]
    for k, v in SHORT.items():
        args += ["--set", f"{k}={v}"]
    p = run(args, timeout=1500)
    assert p.returncode == 0, p.err[-3000:]
    recipe = json.loads(RECIPE.read_text())
    st = state(out)
    assert [s["name"] for s in recipe["stages"]] == list(st)
    for s in recipe["stages"]:
        name = s["name"]
        assert st[name]["status"] == "done", name
        assert st[name]["wall_s"] >= 0
        if "model" in s:
            model = st[name]["model"]
            q = run(["model", "info", "--model", model])
            assert q.returncode == 0, (name, q.err)
        if "metrics" in s:
            path = s["metrics"].replace("{dir}", str(out / name))
            lines = Path(path).read_text().splitlines()
            rows = [json.loads(x) for x in lines if x.strip()]
            assert rows and all(finite_numbers(r) for r in rows), name
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    evaluated = [s["name"] for s in recipe["stages"] if "model" in s and s.get("eval") is not False]
    assert [r["label"] for r in rows] == evaluated
    for r in rows:
        assert finite_numbers(r), r
        assert 0 <= r["pass1"] <= 1 and r["k"] == SHORT["eval_k"]
    assert (out / "results.svg").read_text().startswith("<?xml")
    assert list((out / "pretrain" / "plots").glob("*.svg"))
    assert list((out / "plots" / "zero-vs-cold-start").glob("*.svg"))
    # resuming a finished run does nothing
    p = run(args)
    assert p.returncode == 0 and p.err.count("done before, skipped") == len(st), p.err


def test_a_stop_signal_stops_the_running_stage(tmp_path):
    """SIGTERM to the pipeline reaches the stage it runs: the stage saves
    and exits, the pipeline records it as not done and exits 1; the next
    run does that stage again."""
    import signal
    import subprocess
    import time
    from conftest import R1D
    recipe = write_recipe(tmp_path / "r.json", [
        {"name": "gen", "cmd": ["tasks", "gen", "addition:2", "--count", "200", "--eval-count",
                                "0", "--format", "text"], "stdout": "{dir}/t.jsonl"},
        {"name": "base", "cmd": ["model", "init", "--preset", "tiny", "--out", "{dir}"],
         "model": "{dir}"},
        {"name": "long", "cmd": ["pretrain", "--model", "{base}", "--data", "{out}/gen/t.jsonl",
                                 "--max-steps", "100000", "--max-len", "256", "--max-tokens", "256",
                                 "--threads", "1",
                                 "--progress", "json", "--out", "{dir}"], "model": "{dir}/last"},
    ])
    out = tmp_path / "out"
    p = subprocess.Popen([R1D, "pipeline", str(recipe), "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "long" / "metrics.jsonl").exists():
        time.sleep(0.1)
    # a second pipeline on the same folder is refused while the first runs
    q = run(["pipeline", str(recipe), "--out", str(out)])
    assert q.returncode == 2 and "another r1d pipeline is running" in q.err, q.err
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "stopped by a signal during stage long" in err, err
    assert state(out)["long"]["status"] != "done" and state(out)["base"]["status"] == "done"
