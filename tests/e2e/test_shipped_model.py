"""The model `make run` serves (models/r1d-tiny, trained by r1d's own R1
recipe): asked two-digit additions it has never seen through the official
OpenAI SDK, it streams a worked thought as reasoning_content and then the
answer as content, and the answer is right most of the time."""
import json
import random
import subprocess
from pathlib import Path

import pytest

from e2e_util import R1D, Server

MODEL = Path(__file__).resolve().parents[2] / "models" / "r1d-tiny"


def held_out_problems():
    """The recipe's own held-out split (never trained on): the eval tasks of
    `r1d tasks gen` with the recipe's task, counts and seed."""
    recipe = json.loads((MODEL / "recipe.json").read_text())
    v = recipe["vars"]
    p = subprocess.run([R1D, "tasks", "gen", v["task"], "--count", str(v["n_train"]),
                        "--eval-count", str(v["n_eval"]), "--seed", str(v["seed"]),
                        "--split", "eval"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(x) for x in p.stdout.splitlines()]


@pytest.fixture(scope="module")
def shipped():
    if not (MODEL / "model.safetensors").exists():
        pytest.fail("models/r1d-tiny has no weights (make recipe && make ship-model)")
    s = Server(MODEL, ["--max-num-seqs", 16])
    s.start()
    yield s
    s.stop()
    s.cleanup()


def test_it_thinks_then_answers_additions_it_never_saw(shipped):
    client = shipped.client()
    tasks = random.Random(7).sample(held_out_problems(), 24)
    right = 0
    for t in tasks:
        reasoning, content = "", ""
        stream = client.chat.completions.create(
            model="r1d-tiny", stream=True, max_tokens=96, temperature=0.6, top_p=0.95, seed=1,
            messages=[{"role": "user", "content": t["prompt"]}])
        for chunk in stream:
            d = chunk.choices[0].delta if chunk.choices else None
            if d is not None:
                reasoning += getattr(d, "reasoning_content", None) or ""
                content += d.content or ""
        # the thought works the digits: "7 + 5 = 12, write 2 carry 1"
        assert " = " in reasoning and "write" in reasoning, (t["prompt"], reasoning)
        assert "<think>" not in content and "</think>" not in content
        right += content.strip() == t["checker"]["answer"]
    assert right >= len(tasks) * 0.5, f"{right}/{len(tasks)} right"
