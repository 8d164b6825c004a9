"""The online trainer inside `r1d serve`: a GRPO job trains a candidate from
the live weights on the tasks of the data dir, evaluates it against the live
weights on the held-out split, and swaps it in only when it wins and passes
the sanity checks; its checkpoint and the decision go to the registry.
Jobs can be listed, watched, cancelled; bad configs are 400s naming the
field; the schedule starts jobs by itself. Serving goes on meanwhile.

The task: a completion containing a digit (a regex checker), which the
random tiny model meets about a third of the time and GRPO learns within
16 steps (tests/cli/test_grpo_cli.py shows the same offline)."""
import json
import time

from e2e_util import MODEL_ID, assert_error

CONFIG = {"num_generations": 8, "prompts_per_step": 4, "max_completion_length": 16,
          "learning_rate": 3e-3, "max_steps": 16, "seed": 3, "eval_samples": 4}


def tasks_jsonl(n_train=16, n_eval=8):
    return "".join(json.dumps({"id": f"r{i}", "prompt": f"Say a number {i}",
                               "checker": {"type": "regex", "pattern": "[0-9]"},
                               "split": "eval" if i >= n_train else "train"}) + "\n"
                   for i in range(n_train + n_eval))


def serve_with_tasks(start_server):
    s = start_server(["--max-num-seqs", 32])
    r = s.post("/admin/v1/tasks", tasks_jsonl(), key=None,
               headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 200 and r.json()["added"] == 24, r
    return s


def wait_job(s, jid, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = s.get(f"/admin/v1/jobs/{jid}", key=None).json()
        if j["status"] in ("succeeded", "failed", "cancelled"):
            return j
        time.sleep(0.2)
    raise AssertionError(f"job {jid} still {j['status']}: {j}")


def test_a_better_candidate_goes_live_while_serving(start_server):
    s = serve_with_tasks(start_server)
    client = s.client()
    r = s.post("/admin/v1/jobs", {"type": "grpo", "config": CONFIG, "min_improvement": 0.1,
                                  "min_format_ratio": 0}, key=None)
    assert r.status == 200, r
    job = r.json()
    assert job["status"] in ("queued", "running") and job["progress"]["total_steps"] == 16
    # serving goes on while it trains
    served = 0
    while s.get(f"/admin/v1/jobs/{job['id']}", key=None).json()["status"] in ("queued", "running"):
        c = client.chat.completions.create(model=MODEL_ID, max_tokens=4,
                                           messages=[{"role": "user", "content": "hi"}])
        assert c.choices[0].finish_reason in ("stop", "length")
        served += 1
    assert served > 0
    j = wait_job(s, job["id"])
    assert j["status"] == "succeeded", j
    before, after = j["eval"]["before"], j["eval"]["after"]
    assert before["tasks"] == 8 and after["step"] == 16
    assert after["pass1"] - before["pass1"] > 0.1
    res = j["result"]
    assert res["decision"] == "swapped", res
    assert res["weight_version"] == 2 and res["registry_version"].startswith("ckpt-")
    assert j["metrics"]["step"] == 16 and j["progress"]["step"] == 16
    for k in ("reward", "loss", "kl", "t_rollout", "t_backward", "t_optim"):
        assert isinstance(j["metrics"][k], (int, float)), k
    # the candidate is live: new answers are logged with version 2
    c = client.chat.completions.create(model=MODEL_ID, max_tokens=4,
                                       messages=[{"role": "user", "content": "hi"}])
    rec = s.get(f"/admin/v1/interactions/{c.id}", key=None)
    for _ in range(50):
        if rec.status == 200:
            break
        time.sleep(0.05)
        rec = s.get(f"/admin/v1/interactions/{c.id}", key=None)
    assert rec.json()["weight_version"] == 2
    ck = s.get(f"/admin/v1/checkpoints/{res['registry_version']}", key=None).json()
    assert ck["status"] == "live" and ck["kind"] == "grpo" and ck["job"] == job["id"]
    assert ck["eval"]["decision"] == "swapped"
    m = s.metrics()
    assert m["r1d_trainer_swaps_total"] == 1 and m["r1d_trainer_step"] == 16
    assert m["r1d_trainer_jobs_total{outcome=\"done\"}"] == 1
    # rollback works on a trainer's swap like on any other
    assert s.post("/admin/v1/weights/rollback", None, key=None).json()["new_weight_version"] == 1


def test_the_gate_rejects_and_cancel_and_eval(start_server):
    s = serve_with_tasks(start_server)
    # default sanity checks: the digit reward wipes out the random format
    # (or the gain is too small): the candidate stays a candidate
    j = wait_job(s, s.post("/admin/v1/jobs", {"type": "grpo", "config": CONFIG,
                                               "min_improvement": 0.99}, key=None).json()["id"])
    assert j["status"] == "succeeded" and j["result"]["decision"] == "rejected", j
    assert j["result"]["reason"]
    assert s.get("/admin/v1/weights", key=None).json()["live"] == 1
    ck = s.get(f"/admin/v1/checkpoints/{j['result']['registry_version']}", key=None).json()
    assert ck["status"] == "rejected"
    # a winner with "swap": "never" passes the gate and stays a candidate
    p = wait_job(s, s.post("/admin/v1/jobs", {"type": "grpo", "config": CONFIG, "swap": "never",
                                               "min_improvement": 0.1, "min_format_ratio": 0},
                           key=None).json()["id"])
    assert p["result"]["decision"] == "passed", p["result"]
    ck = s.get(f"/admin/v1/checkpoints/{p['result']['registry_version']}", key=None).json()
    assert ck["status"] == "candidate" and ck["eval"]["decision"] == "passed"
    assert s.get("/admin/v1/weights", key=None).json()["live"] == 1
    # an eval job evaluates the live weights only
    e = wait_job(s, s.post("/admin/v1/jobs", {"type": "eval", "config": {"eval_samples": 2}},
                           key=None).json()["id"])
    assert e["status"] == "succeeded" and e["eval"]["before"]["k"] == 2 and e["result"] is None
    # cancel: a long job stops at a step boundary, keeps its checkpoint, swaps nothing
    long = dict(CONFIG, max_steps=100000)
    jid = s.post("/admin/v1/jobs", {"type": "grpo", "config": long}, key=None).json()["id"]
    while s.get(f"/admin/v1/jobs/{jid}", key=None).json()["progress"]["step"] < 1:
        time.sleep(0.1)
    r = s.post(f"/admin/v1/jobs/{jid}/cancel", None, key=None)
    assert r.status == 200, r
    c = wait_job(s, jid)
    assert c["status"] == "cancelled" and c["result"] is None
    assert_error(s.post(f"/admin/v1/jobs/{jid}/cancel", None, key=None), 409)
    assert_error(s.post("/admin/v1/jobs/job-999/cancel", None, key=None), 404)
    assert_error(s.get("/admin/v1/jobs/job-999", key=None), 404)
    ids = [x["id"] for x in s.get("/admin/v1/jobs", key=None).json()["data"]]
    assert ids == [jid, e["id"], p["id"], j["id"]]


def test_bad_job_configs_name_the_field(start_server):
    s = start_server()
    post = lambda body: s.post("/admin/v1/jobs", body, key=None)  # noqa: E731
    assert_error(post({"type": "distill"}), 400, param="type")
    assert_error(post({"type": "grpo", "config": {"beta": -1}}), 400, param="config.beta")
    assert_error(post({"type": "grpo", "config": {"num_generations": 1}}), 400,
                 param="config.num_generations")
    assert_error(post({"type": "grpo", "config": {"learnin_rate": 1}}), 400,
                 param="config.learnin_rate")
    assert_error(post({"type": "grpo", "config": {"rewards": {"format": "x"}}}), 400,
                 param="config.rewards.format")
    assert_error(post({"type": "grpo", "config": {"loss_type": "sum"}}), 400,
                 param="config.loss_type")
    assert_error(post({"type": "grpo", "min_improvement": "x"}), 400, param="min_improvement")
    assert_error(post({"type": "grpo", "swap": "always"}), 400, param="swap")
    assert_error(post({"type": "grpo", "extra": 1}), 400, param="extra")
    assert_error(s.request("PUT", "/admin/v1/trainer", {"interval_s": 0}, key=None), 400,
                 param="interval_s")
    assert_error(s.request("PUT", "/admin/v1/trainer", {"job": {"type": "grpo", "config":
                                                                {"beta": -2}}}, key=None),
                 400, param="job.config.beta")
    assert s.get("/admin/v1/jobs", key=None).json()["data"] == []


def test_the_schedule_starts_jobs(start_server):
    s = serve_with_tasks(start_server)
    body = {"enabled": True, "interval_s": 1, "min_new_tasks": 1,
            "job": {"type": "grpo", "swap": "never", "config": dict(CONFIG, max_steps=2)}}
    r = s.request("PUT", "/admin/v1/trainer", body, key=None)
    assert r.status == 200 and r.json()["enabled"] is True, r
    deadline = time.monotonic() + 60
    jobs = []
    while time.monotonic() < deadline and not jobs:
        jobs = s.get("/admin/v1/jobs", key=None).json()["data"]
        time.sleep(0.2)
    assert jobs and jobs[0]["scheduled"] is True
    j = wait_job(s, jobs[0]["id"])
    assert j["status"] == "succeeded" and j["result"]["decision"] in ("passed", "rejected")
    # no new tasks since: no second job
    s.request("PUT", "/admin/v1/trainer", {"interval_s": 1}, key=None)
    time.sleep(2.5)
    assert len(s.get("/admin/v1/jobs", key=None).json()["data"]) == 1
    assert s.get("/admin/v1/weights", key=None).json()["live"] == 1


def test_job_ids_continue_after_a_restart(start_server, tmp_path):
    """A restarted server numbers its jobs past the job folders of earlier
    runs in the data dir, so it never writes into their checkpoints."""
    data = tmp_path / "data"
    (data / "jobs" / "job-7").mkdir(parents=True)
    s = start_server(["--data-dir", data])
    r = s.post("/admin/v1/jobs", {"type": "eval"}, key=None)
    assert r.status == 200, r
    assert r.json()["id"] == "job-8"
    j = wait_job(s, "job-8")
    assert j["status"] == "succeeded" and j["eval"]["before"] is None  # no held-out tasks


def test_logged_chats_with_a_checker_are_training_tasks(start_server):
    """A chat request may carry a "checker" (an r1d extension field): it is
    logged with the request, and the next job trains on those chats too; a
    chat whose checker the tasks parser refuses is left out."""
    s = start_server()
    client = s.client()
    for i in range(3):
        # the first answer holds U+0000 (token 0 is byte 0): its record must
        # still load (it once did not, and the chat was silently left out)
        client.chat.completions.create(
            model=MODEL_ID, max_tokens=4, messages=[{"role": "user", "content": f"digit {i}?"}],
            logit_bias={"0": 100} if i == 0 else None,
            extra_body={"checker": {"type": "regex", "pattern": "[0-9]"}})
    client.chat.completions.create(
        model=MODEL_ID, max_tokens=4, messages=[{"role": "user", "content": "bad"}],
        extra_body={"checker": {"type": "regex", "pattern": "("}})
    client.chat.completions.create(model=MODEL_ID, max_tokens=4,
                                   messages=[{"role": "user", "content": "no checker"}])
    time.sleep(0.5)  # the records commit
    r = s.post("/admin/v1/jobs", {"type": "grpo", "swap": "never",
                                  "config": dict(CONFIG, max_steps=1, prompts_per_step=2)},
               key=None)
    assert r.status == 200, r
    j = wait_job(s, r.json()["id"])
    assert j["status"] == "succeeded", j
    assert j["tasks"] == {"train": 3, "from_chats": 3, "eval": 0}, j["tasks"]
    assert j["result"]["decision"] == "rejected"  # no held-out tasks to compare on


def test_an_sft_job_fine_tunes_the_live_weights(start_server, tmp_path):
    """An sft job trains the live weights on a JSONL of conversations (TRL's
    format) and goes through the same held-out gate."""
    s = serve_with_tasks(start_server)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Say a number {i}"},
        {"role": "assistant", "reasoning_content": "a digit", "content": str(i % 10)}]}) + "\n"
        for i in range(40)))
    # the random model rambles to the length limit; the tuned one answers:
    # the length check would (rightly, by default) call that a collapse
    r = s.post("/admin/v1/jobs", {"type": "sft", "min_improvement": 0.1, "min_length_ratio": 0,
                                  "config": {"data": str(data), "max_len": 64, "max_tokens": 512,
                                             "epochs": 8, "learning_rate": 3e-3, "seed": 1,
                                             "max_completion_length": 32}},
               key=None)
    assert r.status == 200, r
    j = wait_job(s, r.json()["id"])
    assert j["status"] == "succeeded", j
    assert j["progress"]["step"] > 0 and j["metrics"]["loss"] > 0
    assert j["eval"]["after"]["pass1"] - j["eval"]["before"]["pass1"] > 0.1, j["eval"]
    assert j["result"]["decision"] == "swapped", j["result"]
    ck = s.get(f"/admin/v1/checkpoints/{j['result']['registry_version']}", key=None).json()
    assert ck["kind"] == "sft" and ck["status"] == "live"
    assert s.get("/admin/v1/weights", key=None).json()["live"] == 2
    for config, param in (({}, "config.data"), ({"data": "x", "epochs": 0}, "config.epochs"),
                          ({"data": "x", "foo": 1}, "config.foo")):
        assert_error(s.post("/admin/v1/jobs", {"type": "sft", "config": config}, key=None), 400,
                     param=param)
    # a file that is not there fails the job with its reason, serving goes on
    f = wait_job(s, s.post("/admin/v1/jobs", {"type": "sft", "config": {
        "data": str(tmp_path / "missing.jsonl")}}, key=None).json()["id"])
    assert f["status"] == "failed" and "missing.jsonl" in f["error"]
    assert s.get("/health", key=None).status == 200


def test_an_align_job_learns_from_feedback(start_server):
    """An align job trains a reward model from /v1/feedback's pairs (a
    preferred answer against the logged one), then runs GRPO with the rule
    rewards plus the reward model on the tasks and the feedback's prompts,
    and goes through the gate (held-out pass@1 may drop at most
    max_regression)."""
    s = serve_with_tasks(start_server)
    client = s.client()
    config = {"num_generations": 4, "prompts_per_step": 2, "max_completion_length": 16,
              "learning_rate": 1e-3, "max_steps": 4, "seed": 3, "eval_samples": 2,
              "rm_steps": 6, "rm_learning_rate": 1e-3, "preference_start": 0.25,
              "preference_weight": 0.5}
    # without feedback there is nothing to learn a preference from
    f = wait_job(s, s.post("/admin/v1/jobs", {"type": "align", "config": config},
                           key=None).json()["id"])
    assert f["status"] == "failed" and "/v1/feedback" in f["error"], f
    for i in range(4):
        c = client.chat.completions.create(model=MODEL_ID, max_tokens=8, seed=i,
                                           messages=[{"role": "user", "content": f"Hello {i}"}])
        r = s.post("/v1/feedback", {"id": c.id, "rating": -1, "preferred": f"Hello! {i}"}, key=None)
        assert r.status == 200, r
    r = s.post("/admin/v1/jobs", {"type": "align", "config": config, "max_regression": 1,
                                  "min_format_ratio": 0, "min_length_ratio": 0}, key=None)
    assert r.status == 200, r
    j = wait_job(s, r.json()["id"])
    assert j["status"] == "succeeded", j
    rm = j["reward_model"]
    assert rm["pairs"] == 4 and rm["steps"] == 6 and 0 <= rm["train_accuracy"] <= 1, rm
    assert j["tasks"]["train"] == 16 + 4  # the feedback's prompts joined the tasks
    assert 0 < j["metrics"]["preference"] < 1, j["metrics"]
    assert j["result"]["decision"] == "swapped", j["result"]
    ck = s.get(f"/admin/v1/checkpoints/{j['result']['registry_version']}", key=None).json()
    assert ck["kind"] == "align"
    for config, param in (({"rm_steps": 0}, "config.rm_steps"),
                          ({"preference_start": 2}, "config.preference_start"),
                          ({"beta": -1}, "config.beta")):
        assert_error(s.post("/admin/v1/jobs", {"type": "align", "config": config}, key=None), 400,
                     param=param)
