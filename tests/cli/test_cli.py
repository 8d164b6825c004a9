"""The r1d command line: model init/info, generate, tokenize, template, and
every bad input of issue 2 answered by one line naming the file and exit 2."""
import json
import struct
import unicodedata

import pytest

from conftest import FIXTURES, read_json, run


def one_error_line(p, *needles):
    assert p.returncode == 2, (p.returncode, p.err)
    lines = [l for l in p.err.splitlines() if l.strip()]
    assert len(lines) == 1, p.err
    assert lines[0].startswith("r1d: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])


# --- model init / info ------------------------------------------------------

def test_model_init_writes_hf_folder(tiny_model):
    for name in ["config.json", "generation_config.json", "model.safetensors",
                 "tokenizer.json", "tokenizer_config.json"]:
        assert (tiny_model / name).is_file(), name
    cfg = read_json(tiny_model / "config.json")
    assert cfg["architectures"] == ["Qwen2ForCausalLM"]
    tok = read_json(tiny_model / "tokenizer.json")
    added = {t["content"] for t in tok["added_tokens"]}
    for t in ["<think>", "</think>", "<answer>", "</answer>", "<｜User｜>", "<｜Assistant｜>"]:
        assert t in added
    p = run(["model", "info", "--model", str(tiny_model)], check=True)
    assert "Qwen2ForCausalLM" in p.out
    # "tiny" is about 1M parameters
    params = float(p.out.split("parameters")[1].split("M")[0])
    assert 0.5 < params < 2.0


def test_model_init_bad_preset(tmp_path):
    p = run(["model", "init", "--arch", "llama", "--preset", "nope", "--out", str(tmp_path / "x")])
    one_error_line(p, "preset")


def test_model_init_is_seeded(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run(["model", "init", "--preset", "tiny", "--seed", "3", "--out", str(a)], check=True)
    run(["model", "init", "--preset", "tiny", "--seed", "3", "--out", str(b)], check=True)
    run(["model", "init", "--preset", "tiny", "--seed", "4", "--out", str(c)], check=True)
    wa = (a / "model.safetensors").read_bytes()
    assert wa == (b / "model.safetensors").read_bytes()
    assert wa != (c / "model.safetensors").read_bytes()


# --- generate -----------------------------------------------------------------

def gen(model, *extra):
    return run(["generate", "--model", str(model), "--threads", "1"] + list(extra))


def test_generate_greedy_is_deterministic(tiny_model):
    a = gen(tiny_model, "--prompt", "What is 2+2?", "--temperature", "0", "--max-tokens", "12")
    b = gen(tiny_model, "--prompt", "What is 2+2?", "--temperature", "0", "--max-tokens", "12")
    assert a.returncode == 0, a.err
    assert a.stdout == b.stdout


def test_generate_seed_reproducible(tiny_model):
    args = ["--prompt", "hello", "--temperature", "1.0", "--max-tokens", "16", "--json"]
    a = gen(tiny_model, *args, "--seed", "11")
    b = gen(tiny_model, *args, "--seed", "11")
    c = gen(tiny_model, *args, "--seed", "12")
    ids = lambda p: [json.loads(l)["id"] for l in p.out.splitlines()]
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)


def test_generate_json_tokens(tiny_model):
    p = gen(tiny_model, "--prompt-ids", "1,2,3,4", "--max-tokens", "5", "--json",
            "--top-logprobs", "3", "--temperature", "0", "--ignore-eos")
    assert p.returncode == 0, p.err
    rows = [json.loads(l) for l in p.out.splitlines()]
    assert len(rows) == 5
    for r in rows:
        assert set(r) == {"id", "text", "logprob", "top_logprobs"}
        assert len(r["top_logprobs"]) == 3
        # greedy: the chosen token is the most likely one, logprob <= 0
        assert r["top_logprobs"][0][0] == r["id"]
        assert abs(r["top_logprobs"][0][1] - r["logprob"]) < 1e-5
        assert r["logprob"] <= 0
        lps = [x[1] for x in r["top_logprobs"]]
        assert lps == sorted(lps, reverse=True)


def test_generate_max_tokens_and_stats(tiny_model):
    p = gen(tiny_model, "--prompt", "x", "--max-tokens", "7", "--json", "--ignore-eos", "--stats")
    assert p.returncode == 0, p.err
    assert len(p.out.splitlines()) == 7
    assert "completion 7 tokens" in p.err and "prefill" in p.err


def test_generate_bad_arguments(tiny_model):
    one_error_line(gen(tiny_model, "--prompt", "x", "--top-p", "1.5"), "top_p")
    one_error_line(gen(tiny_model, "--prompt", "x", "--max-tokens", "0"), "max-tokens")
    one_error_line(gen(tiny_model, "--prompt-ids", "1,999999"), "prompt-ids")
    one_error_line(gen(tiny_model), "exactly one")
    one_error_line(run(["generate", "--prompt", "x"]), "--model")


def test_generate_messages_file(tiny_model, tmp_path):
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hi"}]))
    p = gen(tiny_model, "--messages", str(msgs), "--max-tokens", "4", "--temperature", "0")
    assert p.returncode == 0, p.err
    bad = tmp_path / "bad.json"
    bad.write_text('[{"role": "user", "content": ')
    one_error_line(gen(tiny_model, "--messages", str(bad)), "bad.json")


# --- tokenize / template ----------------------------------------------------------

def test_tokenize_matches_reference_and_roundtrips():
    ref = read_json(FIXTURES / "tokenizers" / "ref_public.json")["qwen3"]
    model = str(FIXTURES / "tokenizers" / "qwen3")
    lines = "".join(json.dumps(r["text"]) + "\n" for r in ref)
    p = run(["tokenize", "--model", model], stdin=lines, check=True)
    got = [json.loads(l) for l in p.out.splitlines()]
    assert got == [r["ids"] for r in ref]
    back = run(["tokenize", "--model", model, "--decode"], stdin=p.out, check=True)
    # Qwen's normalizer is NFC: decode gives back the NFC form of the text
    nfc = [unicodedata.normalize("NFC", r["text"]) for r in ref]
    assert [json.loads(l) for l in back.out.splitlines()] == nfc


def test_tokenize_invalid_utf8_on_stdin():
    model = str(FIXTURES / "tokenizers" / "qwen3")
    p = run(["tokenize", "--model", model], stdin=b'"ok"\n"bad \xff\xfe"\n')
    one_error_line(p, "stdin line 2")
    assert p.out.splitlines() == ["[562]"]


def test_tokenize_not_a_string():
    p = run(["tokenize", "--model", str(FIXTURES / "tokenizers" / "qwen3")], stdin="[1,2]\n")
    one_error_line(p, "stdin line 1")


def test_template_renders_r1_distill_reference():
    refs = read_json(FIXTURES / "templates" / "reference_public.json")
    key = next(k for k in refs if "r1" in k)
    model = str(FIXTURES / "templates" / "r1-distill")
    for case in refs[key]:
        args = ["template", "--model", model]
        if not case["add_generation_prompt"]:
            args.append("--no-generation-prompt")
        p = run(args, stdin=json.dumps(case["messages"]) + "\n", check=True)
        assert json.loads(p.out) == case["text"]


def test_template_bad_messages():
    model = str(FIXTURES / "templates" / "r1-distill")
    p = run(["template", "--model", model], stdin='{"role": "user"}\n')
    one_error_line(p, "stdin line 1")


# --- bad model folders: one line naming the file, exit 2, never a crash ----------

def rewrite_safetensors(path, header, data=b""):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def test_truncated_safetensors(model_copy):
    st = model_copy / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    one_error_line(gen(model_copy, "--prompt", "x"), "model.safetensors")


def test_tiny_safetensors_file(model_copy):
    (model_copy / "model.safetensors").write_bytes(b"\x01\x02")
    one_error_line(gen(model_copy, "--prompt", "x"), "model.safetensors")


def test_malformed_safetensors_header(model_copy):
    st = model_copy / "model.safetensors"
    bad = b"{not json"
    st.write_bytes(struct.pack("<Q", len(bad)) + bad)
    one_error_line(gen(model_copy, "--prompt", "x"), "model.safetensors")


def test_offset_past_end(model_copy):
    rewrite_safetensors(model_copy / "model.safetensors",
                        {"model.norm.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                        b"\x00" * 8)
    one_error_line(gen(model_copy, "--prompt", "x"), "model.safetensors")


def test_unknown_dtype(model_copy):
    rewrite_safetensors(model_copy / "model.safetensors",
                        {"model.norm.weight": {"dtype": "F8_E9M9", "shape": [4], "data_offsets": [0, 4]}},
                        b"\x00" * 4)
    one_error_line(gen(model_copy, "--prompt", "x"), "model.safetensors", "F8_E9M9")


def test_missing_tensor(model_copy):
    rewrite_safetensors(model_copy / "model.safetensors",
                        {"model.norm.weight": {"dtype": "F32", "shape": [128], "data_offsets": [0, 512]}},
                        b"\x00" * 512)
    one_error_line(gen(model_copy, "--prompt", "x"), "missing tensor")


def test_heads_do_not_divide(model_copy):
    cfg = read_json(model_copy / "config.json")
    cfg["num_key_value_heads"] = 3
    (model_copy / "config.json").write_text(json.dumps(cfg))
    one_error_line(gen(model_copy, "--prompt", "x"), "config.json")
    one_error_line(run(["model", "info", "--model", str(model_copy)]), "config.json")


def test_unsupported_tokenizer_type(model_copy):
    tok = read_json(model_copy / "tokenizer.json")
    tok["model"]["type"] = "WordPiece"
    (model_copy / "tokenizer.json").write_text(json.dumps(tok))
    one_error_line(gen(model_copy, "--prompt", "x"), "tokenizer.json", "WordPiece")
    one_error_line(run(["tokenize", "--model", str(model_copy)], stdin='"a"\n'), "tokenizer.json")


def test_missing_folder():
    one_error_line(gen("/nonexistent/model", "--prompt", "x"), "/nonexistent/model")


def test_generate_marks_reasoning_on_a_terminal(tiny_model):
    """On a tty the prompt's open <think> shows as a dimmed "thinking:" block;
    piped output is the raw text with no escape codes."""
    import os
    import pty
    import subprocess
    from conftest import R1D
    args = [R1D, "generate", "--model", str(tiny_model), "--prompt", "2+2?",
            "--max-tokens", "8", "--temperature", "0", "--ignore-eos", "--threads", "1"]
    try:
        master, slave = pty.openpty()
    except OSError as e:  # a sandbox without /dev/ptmx
        pytest.skip(f"no pseudo-terminal: {e}")
    p = subprocess.Popen(args, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(timeout=60) == 0
    assert out.startswith(b"\x1b[2mthinking: "), out[:40]
    assert b"\x1b[0m" in out
    piped = gen(tiny_model, "--prompt", "2+2?", "--max-tokens", "8", "--temperature", "0",
                "--ignore-eos")
    assert b"\x1b[" not in piped.stdout and b"thinking:" not in piped.stdout


def test_generate_raw_adds_the_tokenizers_bos(model_copy):
    """--raw encodes like Hugging Face's encode(): BOS only when the tokenizer
    adds one (here: tokenizer_config.json's add_bos_token)."""
    args = ["--raw", "--prompt", "x", "--max-tokens", "1", "--stats", "--temperature", "0"]
    p = gen(model_copy, *args)
    assert p.returncode == 0, p.err
    assert "prompt 1 tokens" in p.err
    cfg = read_json(model_copy / "tokenizer_config.json")
    cfg["add_bos_token"] = True
    (model_copy / "tokenizer_config.json").write_text(json.dumps(cfg))
    p = gen(model_copy, *args)
    assert p.returncode == 0, p.err
    assert "prompt 2 tokens" in p.err
