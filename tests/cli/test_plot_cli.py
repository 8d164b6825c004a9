"""`r1d plot`: SVG curves from the metrics of real (tiny, seconds-long)
`r1d grpo` and `r1d sft` runs, two runs overlaid, NaN gaps and resumed runs,
the results table, and bad input. Every SVG is parsed with ElementTree, so a
file a browser would refuse fails here."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run

NS = {"s": "http://www.w3.org/2000/svg"}
GRPO = ["--task-gen", "addition:1", "--task-count", "20", "--eval-count", "4",
        "--num-generations", "2", "--prompts-per-step", "2", "--max-steps", "3",
        "--max-completion-length", "8", "--eval-samples", "2", "--threads", "1",
        "--progress", "json"]


def grpo_run(model, out, seed):
    p = run(["grpo", "--model", str(model), "--out", str(out), "--seed", str(seed)] + GRPO)
    assert p.returncode == 0, p.err
    return out / "metrics.jsonl"


@pytest.fixture(scope="module")
def two_runs(tiny_model, tmp_path_factory):
    """Two short GRPO runs in folders named like the runs they stand for."""
    base = tmp_path_factory.mktemp("runs")
    return grpo_run(tiny_model, base / "r1-zero", 1), grpo_run(tiny_model, base / "cold-start", 2)


def lines(path):
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def parse(path):
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("version") == "1.1"
    return root


def series(root):
    return root.findall(".//s:g[@class='series']", NS)


def legend(root):
    return [t.text for t in root.findall(".//s:g[@class='entry']/s:text", NS)]


def title(root):
    return root.find("s:title", NS).text


def points_of(path_el):
    """The line's subpaths as lists of (x, y) pixel points."""
    subpaths = []
    for part in path_el.get("d").split("M")[1:]:
        pts = [tuple(map(float, p.strip().split(","))) for p in part.split("L")]
        subpaths.append(pts)
    return subpaths


def test_two_grpo_runs_overlay_in_one_chart_per_field(two_runs, tmp_path):
    out = tmp_path / "plots"
    p = run(["plot", str(two_runs[0]), str(two_runs[1]), "--out", str(out)])
    assert p.returncode == 0, p.err
    written = p.out.split()
    names = ["reward", "accuracy", "completion_len", "kl", "loss", "eval_pass1"]
    assert written == [str(out / f"{n}.svg") for n in names] + [str(out / "index.html")]
    rows = lines(two_runs[0])
    train = [r for r in rows if "reward" in r]
    evals = [r for r in rows if "eval_pass1" in r]
    assert len(train) == 3 and len(evals) == 2  # steps 1..3; evals at 0 and 3
    for n in names:
        root = parse(out / f"{n}.svg")
        assert legend(root) == ["r1-zero", "cold-start"]  # the folders' names
        ss = series(root)
        assert len(ss) == 2
        assert [g.find("s:title", NS).text for g in ss] == ["r1-zero", "cold-start"]
        want = len(evals) if n == "eval_pass1" else len(train)
        for g in ss:
            line = g.findall("s:path[@class='line']", NS)
            assert len(line) == 1
            (pts,) = points_of(line[0])  # no gaps in a healthy run
            assert len(pts) == want
            assert [x for x, _ in pts] == sorted(x for x, _ in pts)
        assert root.find(".//s:text[@class='ylabel']", NS).text == n
        assert root.find(".//s:text[@class='xlabel']", NS).text == "step"
    assert title(parse(out / "reward.svg")) == "reward (mean over completions)"
    assert title(parse(out / "loss.svg")) == "training loss"
    pass1 = parse(out / "eval_pass1.svg")
    assert title(pass1) == "eval pass@1 \u00b1 95% CI"
    assert len(pass1.findall(".//s:path[@class='band']", NS)) == 2
    # x ticks at whole steps only
    ticks = [t.text for t in pass1.findall(".//s:g[@class='axis x']/s:text", NS)]
    assert ticks and all("." not in t for t in ticks)
    index = (out / "index.html").read_text()
    for n in names:
        assert f'src="{n}.svg"' in index
    assert "r1-zero" in index and "cold-start" in index


def test_labels_fields_and_all(two_runs, tmp_path):
    out = tmp_path / "p"
    p = run(["plot", str(two_runs[0]), str(two_runs[1]), "--out", str(out),
             "--fields", "kl, reward", "--label", "R1-Zero <&> \"x\"", "--label", "cold"])
    assert p.returncode == 0, p.err
    assert p.out.split() == [str(out / "kl.svg"), str(out / "reward.svg"), str(out / "index.html")]
    root = parse(out / "kl.svg")
    assert legend(root) == ['R1-Zero <&> "x"', "cold"]
    # one label: the second file keeps its folder's name
    p = run(["plot", str(two_runs[0]), str(two_runs[1]), "--out", str(out),
             "--fields", "lr", "--label", "first"])
    assert p.returncode == 0, p.err
    assert legend(parse(out / "lr.svg")) == ["first", "cold-start"]
    # all: every numeric field, the bands folded into their fields
    p = run(["plot", str(two_runs[0]), "--out", str(tmp_path / "all"), "--fields", "all"])
    assert p.returncode == 0, p.err
    got = {Path(f).stem for f in p.out.split() if f.endswith(".svg")}
    keys = {k for r in lines(two_runs[0]) for k, v in r.items() if isinstance(v, (int, float))}
    assert got == keys - {"step", "total_steps", "eval_pass1_ci95", "eval_gain_ci95"}
    for f in p.out.split():
        if f.endswith(".svg"):
            parse(f)


def test_sft_run_draws_loss_and_eval_loss(tiny_model, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i} + 2?", "completion": f" {i + 2}"}) + "\n"
                            for i in range(24)))
    out = tmp_path / "sft"
    p = run(["sft", "--model", str(tiny_model), "--data", str(data), "--out", str(out),
             "--max-steps", "4", "--eval-split", "0.2", "--eval-every", "2", "--max-len", "128",
             "--max-tokens", "256", "--lr", "1e-3", "--threads", "1", "--progress", "json"])
    assert p.returncode == 0, p.err
    p = run(["plot", str(out / "metrics.jsonl"), "--out", str(tmp_path / "plots")])
    assert p.returncode == 0, p.err
    assert [Path(f).name for f in p.out.split()] == ["loss.svg", "eval_loss.svg", "index.html"]
    root = parse(tmp_path / "plots" / "eval_loss.svg")
    assert title(root) == "eval loss" and legend(root) == ["sft"]
    (pts,) = points_of(root.find(".//s:path[@class='line']", NS))
    assert len(pts) == sum("eval_loss" in r for r in lines(out / "metrics.jsonl"))


def test_nan_gaps_resumed_steps_and_blank_lines(tmp_path):
    run_dir = tmp_path / "diverged"
    run_dir.mkdir()
    text = ""
    for s in range(1, 9):
        loss = "nan" if s in (4, 5) else f"{1.0 / s:.4f}"
        text += f'{{"step": {s}, "loss": {loss}, "lr": 1e-05}}\n'
        if s == 2:
            text += "\n   \n"
    # resumed from step 6: steps 7 and 8 come again with other values
    text += '{"step": 7, "loss": -Infinity, "lr": 1e-05}\n{"step": 8, "loss": 0.5, "lr": 1e-05}\n'
    (run_dir / "metrics.jsonl").write_text(text)
    p = run(["plot", str(run_dir / "metrics.jsonl"), "--out", str(tmp_path / "o")])
    assert p.returncode == 0, p.err
    root = parse(tmp_path / "o" / "loss.svg")
    (g,) = series(root)
    subpaths = points_of(g.find("s:path[@class='line']", NS))
    # steps 1-3, then 6 alone (7 is now -inf), then 8 alone: one line, two markers
    assert [len(s) for s in subpaths] == [3]
    assert len(g.findall("s:circle[@r='3.5']", NS)) == 2
    assert len(g.findall("s:circle", NS)) == 5  # 1, 2, 3, 6, 8


def test_results_table(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"stage": "r1-zero", "model": "runs/r1-zero/last", "pass1": 0.41, "pass1_ci": 0.05,
                    "cons": 0.5, "cons_ci": 0.06, "k": 8, "n_tasks": 100, "wall_s": 123.4}) + "\n\n"
        + json.dumps({"stage": "cold <start> & \"sft\" 'x'", "model": "runs/cold/last", "pass1": 0.512345,
                      "pass1_ci": 0.0123, "cons": 0.6, "k": 8, "n_tasks": 100, "wall_s": 12345.6,
                      "extra": {"a": [1, 2]}, "ok": True}) + "\n")
    out = tmp_path / "t" / "table.svg"
    p = run(["plot", "--table", str(rows), "--out", str(out)])
    assert p.returncode == 0, p.err
    assert p.out.split() == [str(out)]
    root = parse(out)
    head = [t.text for t in root.findall(".//s:g[@class='head']/s:text", NS)]
    assert head == ["stage", "model", "pass1", "cons", "k", "n_tasks", "wall_s", "extra", "ok"]
    body = [[t.text or "" for t in g.findall("s:text", NS)]
            for g in root.findall(".//s:g[@class='row']", NS)]
    assert body[0] == ["r1-zero", "runs/r1-zero/last", "0.410 \u00b1 0.050", "0.500 \u00b1 0.060",
                       "8", "100", "123.4", "", ""]
    assert body[1] == ["cold <start> & \"sft\" 'x'", "runs/cold/last", "0.512 \u00b1 0.012", "0.6",
                       "8", "100", "12345.6", '{"a":[1,2]}', "true"]
    assert len(root.findall(".//s:rect[@class='zebra']", NS)) == 1
    # chosen columns, in the given order
    p = run(["plot", "--table", str(rows), "--out", str(out), "--columns", "wall_s,stage"])
    assert p.returncode == 0, p.err
    head = [t.text for t in parse(out).findall(".//s:g[@class='head']/s:text", NS)]
    assert head == ["wall_s", "stage"]


def test_bad_input_exits_2_naming_file_and_line(two_runs, tmp_path):
    good = str(two_runs[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "loss": 1}\n\n{"step": 2, "loss": \n')
    arr = tmp_path / "arr.jsonl"
    arr.write_text('{"step": 1, "loss": 1}\n[1, 2]\n')
    words = tmp_path / "words.jsonl"
    words.write_text('{"step": 1, "note": "hi"}\n')
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    out = str(tmp_path / "out")
    cases = [
        (["plot", str(tmp_path / "missing.jsonl"), "--out", out], "missing.jsonl"),
        (["plot", good, str(bad), "--out", out], f"{bad}:3: not JSON"),
        (["plot", str(arr), "--out", out], f"{arr}:2: not a JSON object"),
        (["plot", str(words), "--out", out], f"{words}: no numeric field to plot"),
        (["plot", str(empty), "--out", out], f"{empty}: no numeric field to plot"),
        (["plot", good, "--out", out, "--fields", "nope"], "no numeric field 'nope'"),
        (["plot", good, "--out", out, "--fields", " , "], "--fields: expected a comma list"),
        (["plot", good], "--out is required"),
        (["plot", "--out", out], "expected METRICS.jsonl"),
        (["plot", good, "--out", out, "--label", "a", "--label", "b"], "2 labels for 1 files"),
        (["plot", good, "--out", out, "--columns", "a"], "--columns goes with --table"),
        (["plot", "--table", str(bad), "--out", out + ".svg"], f"{bad}:3: not JSON"),
        (["plot", "--table", str(empty), "--out", out + ".svg"], f"{empty}: no rows"),
        (["plot", "--table", good, "--out", out + ".svg", "--columns", "step,zzz"],
         "no row has a column 'zzz'"),
        (["plot", "--table", good, "--out", out + ".svg", "extra"], "unexpected argument 'extra'"),
    ]
    for args, needle in cases:
        p = run(args)
        assert p.returncode == 2, (args, p.err)
        assert needle in p.err, (args, p.err)
        assert p.err.count("\n") == 1 and p.err.startswith("r1d: "), p.err
        assert p.out == ""
    # nothing was written by the failed calls
    assert not Path(out).exists() and not Path(out + ".svg").exists()
    # an unwritable output is an error too
    p = run(["plot", good, "--out", "/proc/r1d-plot-test"])
    assert p.returncode == 2 and "/proc/r1d-plot-test" in p.err


def test_help():
    p = run(["help", "plot"])
    assert p.returncode == 0 and "--table ROWS.jsonl" in p.out
    p = run(["plot", "--help"])
    assert p.returncode == 0 and "usage: r1d plot" in p.out
