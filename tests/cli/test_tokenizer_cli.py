"""`r1d tokenizer train` against the Python `tokenizers` package: the trained
tokenizer.json must load there and give exactly the ids `r1d tokenize` gives
on held-out text (special tokens, odd Unicode, code, CJK), the folder must
work with `r1d template` and `r1d model init --tokenizer` (a model `r1d
generate` runs), the `micro` preset must exist, and bad input must be one
error line with exit 2."""
import json
import random
import time

import pytest
from tokenizers import Tokenizer

from conftest import FIXTURES, read_json, run

ENGLISH = ("the of and to in is that for it as was with be by on not he this are "
           "or his from at which but have an they you were her she there would "
           "their we him been has when who will more no if out so said what up "
           "its about into than them can only other new some could time these "
           "two may then do first any my now such like our over man me even most "
           "made after also did many before must through back years where much "
           "your way well down should because each just those people Mr how too "
           "little state good very make world still own see men work long get "
           "here between both life being under never day same another know while "
           "last might us great old year off come since against go came right "
           "used take three reasoning answer model token think compute").split()
CHINESE = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从数理解答问题计算模型推"
CODE = [
    "def f(x):\n    return x * 2 + 1\n",
    "for (int i = 0; i < n; i++) { sum += a[i]; }\n",
    "if err != nil {\n\treturn fmt.Errorf(\"bad: %w\", err)\n}\n",
    "SELECT id, name FROM users WHERE age >= 18;\n",
    "const xs = [1, 2, 3].map((v) => v ** 2);\n",
    "<div class=\"row\"><span>{{ value }}</span></div>\n",
]
EXTRA = ["café", "naïve", "Ünïcödé", "🙂", "👍🏽", "—", "“quoted”", "½", "x²", "Ω", "مرحبا",
         "한국어", "ありがとう", "Привет", "\t", "  ", "\r\n", "'s", "'LL", "<think>", "</think>"]


def make_corpus(rng, n_bytes):
    """Mixed English / Chinese / digits / code, deterministic for rng."""
    parts, size = [], 0
    while size < n_bytes:
        kind = rng.random()
        if kind < 0.45:
            words = [rng.choice(ENGLISH) for _ in range(rng.randint(5, 20))]
            words[0] = words[0].capitalize()
            s = " ".join(words) + rng.choice([". ", ", ", "! ", "? ", ".\n"])
        elif kind < 0.65:
            s = "".join(rng.choice(CHINESE) for _ in range(rng.randint(6, 30)))
            s += rng.choice(["。", "，", "？", "\n"])
        elif kind < 0.75:
            s = f"{rng.randint(0, 10**rng.randint(1, 12))} + {rng.random():.4f} = ? "
        elif kind < 0.9:
            s = rng.choice(CODE)
        else:
            s = " ".join(rng.choice(EXTRA) for _ in range(rng.randint(1, 6))) + " "
        parts.append(s)
        size += len(s.encode())
    return "".join(parts)


HELD_OUT = [
    "",
    "Hello, world! The model thinks before it answers.",
    "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n2+2=4</think>"
    "<answer>4</answer><｜end▁of▁sentence｜>",
    "<think><think></think> </answer><answer>",
    "<｜▁pad▁｜><｜▁pad▁｜>x",
    "数学是研究数量、结构以及空间等概念的一门学科。模型推理问题解答",
    "12345678901234567890 3.14159 -0.5e10 1,000,000",
    "def main():\n\tprint('hi')  # comment\n\n\n    return 0\r\n",
    "e\u0301 vs \u00e9, A\u030a, \ufb01 ligature, ＦＵＬＬ ｗｉｄｔｈ",  # NFC
    "zero\u200bwidth\u200djoiner \u2028line\u2029para \u00a0nbsp \u3000ideographic",
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏿 ✔️",
    "مرحبا بالعالم שלום עולם",
    "한국어 텍스트 ありがとうございます Привет мир Ελληνικά",
    "\x01\x02\x07\x1b[31mred\x1b[0m \x7f",
    "I'M HERE, YOU'LL SEE, it's they've we'd",
    "   leading and trailing spaces   ",
    "\n\n\n",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀀𠀁 math 𝑥 = 𝑦",
    "\ufffd replacement \ufeff bom",
    "a" * 300 + " " + "9" * 50,
    "<think",
    "</think>>",
]


def ids_r1d(model_dir, texts):
    lines = "".join(json.dumps(t) + "\n" for t in texts)
    p = run(["tokenize", "--model", str(model_dir)], stdin=lines, check=True)
    return [json.loads(l) for l in p.out.splitlines()]


def summary_numbers(line):
    """merges, vocab, corpus bytes, bytes/token, seconds of the summary."""
    assert line.startswith("wrote "), line
    words = line.replace(",", " ").replace("(", " ").split()
    merges = int(words[words.index("merges") - 1])
    vocab = int(words[words.index("vocab") + 1])
    corpus = int(words[words.index("corpus") + 1])
    bpt = float(words[words.index("bytes/token") - 1])
    secs = float(words[-2])
    return merges, vocab, corpus, bpt, secs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2048-id tokenizer trained on ~300 KB of mixed text (and a JSONL
    file of more documents)."""
    d = tmp_path_factory.mktemp("tok")
    rng = random.Random(1234)
    corpus = d / "corpus.txt"
    corpus.write_text(make_corpus(rng, 300_000), encoding="utf-8")
    jsonl = d / "docs.jsonl"
    with jsonl.open("w", encoding="utf-8") as f:
        for _ in range(200):
            f.write(json.dumps({"text": make_corpus(rng, 300), "id": 1}) + "\n")
        f.write("\n")  # blank lines are skipped
    out = d / "out"
    t0 = time.time()
    p = run(["tokenizer", "train", "--corpus", str(corpus), "--jsonl", str(jsonl),
             "--vocab-size", "2048", "--out", str(out)], check=True)
    elapsed = time.time() - t0
    return {"dir": out, "out": p.out, "corpus": corpus, "elapsed": elapsed, "rng": rng}


def test_summary_line(trained):
    lines = trained["out"].splitlines()
    assert len(lines) == 1, trained["out"]
    merges, vocab, corpus, bpt, secs = summary_numbers(lines[0])
    assert vocab == 2048
    assert merges >= 2048 - 256 - 9
    assert corpus > 300_000
    assert 2.0 < bpt < 10.0  # 2048 ids compress mixed text well past bytes
    assert secs < 30 and trained["elapsed"] < 60


def test_python_tokenizers_agrees(trained):
    d = trained["dir"]
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    assert tok.get_vocab_size(with_added_tokens=True) == 2048
    rng = random.Random(99)
    held = HELD_OUT + [make_corpus(rng, rng.randint(20, 400)) for _ in range(150)]
    got = ids_r1d(d, held)
    want = [tok.encode(t, add_special_tokens=False).ids for t in held]
    for t, g, w in zip(held, got, want):
        assert g == w, t
    # and decoding gives the NFC text back (the normalizer is NFC)
    import unicodedata
    for t, w in zip(held, want):
        assert tok.decode(w, skip_special_tokens=False) == unicodedata.normalize("NFC", t)


def test_special_tokens_are_single_ids(trained):
    d = trained["dir"]
    tok = read_json(d / "tokenizer.json")
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    for name in ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>",
                 "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<answer>", "</answer>"]:
        assert ids_r1d(d, [name]) == [[added[name]]]
    # ids follow the learned vocabulary, as model init's tokenizer has them
    assert sorted(added.values()) == list(range(2048 - 9, 2048))


def test_deterministic(trained, tmp_path):
    p = run(["tokenizer", "train", "--corpus", str(trained["corpus"]), "--vocab-size", "700",
             "--out", str(tmp_path / "a")], check=True)
    run(["tokenizer", "train", "--corpus", str(trained["corpus"]), "--vocab-size", "700",
         "--out", str(tmp_path / "b")], check=True)
    a = (tmp_path / "a" / "tokenizer.json").read_bytes()
    assert a == (tmp_path / "b" / "tokenizer.json").read_bytes()
    assert summary_numbers(p.out.strip())[1] == 700


def test_template_works_on_trained_dir(trained):
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    p = run(["template", "--model", str(trained["dir"])], stdin=json.dumps(msgs) + "\n",
            check=True)
    assert json.loads(p.out) == "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n"


def test_model_init_with_trained_tokenizer(trained, tmp_path):
    m = tmp_path / "m"
    run(["model", "init", "--preset", "micro", "--seed", "5", "--out", str(m),
         "--tokenizer", str(trained["dir"] / "tokenizer.json")], check=True)
    cfg = read_json(m / "config.json")
    assert cfg["vocab_size"] == 2048  # already a multiple of 16
    assert cfg["hidden_size"] == 64 and cfg["num_hidden_layers"] == 2
    tok = read_json(m / "tokenizer.json")
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    assert cfg["bos_token_id"] == added["<｜begin▁of▁sentence｜>"]
    assert cfg["eos_token_id"] == added["<｜end▁of▁sentence｜>"]
    assert (m / "tokenizer.json").read_bytes() == (trained["dir"] / "tokenizer.json").read_bytes()
    p = run(["generate", "--model", str(m), "--threads", "1", "--prompt", "What is 2+2?",
             "--temperature", "0", "--max-tokens", "8", "--ignore-eos", "--json"], check=True)
    ids = [json.loads(l)["id"] for l in p.out.splitlines()]
    assert len(ids) == 8 and all(0 <= i < 2048 for i in ids)


def test_model_init_rounds_vocab_up(trained, tmp_path):
    tdir = tmp_path / "t"
    run(["tokenizer", "train", "--corpus", str(trained["corpus"]), "--vocab-size", "1000",
         "--out", str(tdir)], check=True)
    m = tmp_path / "m"
    run(["model", "init", "--preset", "tiny", "--out", str(m),
         "--tokenizer", str(tdir / "tokenizer.json")], check=True)
    assert read_json(m / "config.json")["vocab_size"] == 1008


def test_micro_preset(tmp_path):
    m = tmp_path / "micro"
    run(["model", "init", "--preset", "micro", "--out", str(m)], check=True)
    cfg = read_json(m / "config.json")
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
            cfg["num_attention_heads"], cfg["num_key_value_heads"],
            cfg["max_position_embeddings"]) == (64, 192, 2, 4, 2, 2048)
    p = run(["model", "init", "--preset", "nope", "--out", str(tmp_path / "x")])
    assert p.returncode == 2 and "micro, tiny or small" in p.err


def test_from_model_keeps_its_added_tokens(trained, tmp_path):
    src = FIXTURES / "tokenizers" / "deepseek-v3"
    out = tmp_path / "ds"
    run(["tokenizer", "train", "--corpus", str(trained["corpus"]), "--vocab-size", "4000",
         "--from-model", str(src), "--out", str(out)], check=True)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    theirs = read_json(src / "tokenizer.json")["added_tokens"]
    ours = read_json(out / "tokenizer.json")["added_tokens"]
    assert [t["content"] for t in ours] == [t["content"] for t in sorted(theirs, key=lambda t: t["id"])]
    assert tok.get_vocab_size(with_added_tokens=True) == 4000
    held = HELD_OUT + ["<｜place▁holder▁no▁7｜>x<｜fim▁hole｜>"]
    assert ids_r1d(out, held) == [tok.encode(t, add_special_tokens=False).ids for t in held]
    cfg = read_json(out / "tokenizer_config.json")
    assert "added_tokens_decoder" not in cfg and "chat_template" in cfg
    msgs = [{"role": "user", "content": "hi"}]
    p = run(["template", "--model", str(out)], stdin=json.dumps(msgs) + "\n", check=True)
    assert "hi" in json.loads(p.out)


# --- bad input: one line on stderr, exit 2 ------------------------------------------

def one_error_line(p, *needles):
    assert p.returncode == 2, (p.returncode, p.err)
    lines = [l for l in p.err.splitlines() if l.strip()]
    assert len(lines) == 1, p.err
    assert lines[0].startswith("r1d: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_missing_corpus(tmp_path):
    p = run(["tokenizer", "train", "--corpus", str(tmp_path / "nope.txt"), "--vocab-size", "500",
             "--out", str(tmp_path / "o")])
    one_error_line(p, "nope.txt")
    assert not (tmp_path / "o").exists()


def test_vocab_size_out_of_range(trained, tmp_path):
    args = ["tokenizer", "train", "--corpus", str(trained["corpus"]), "--out", str(tmp_path / "o")]
    one_error_line(run(args + ["--vocab-size", "100"]), "vocab size 100")
    one_error_line(run(args + ["--vocab-size", "264"]), "265")  # 256 bytes + 9 added
    one_error_line(run(args + ["--vocab-size", "10000000"]), "10000000")
    one_error_line(run(args + ["--vocab-size", "ten"]), "--vocab-size")


def test_missing_arguments(trained, tmp_path):
    c = str(trained["corpus"])
    one_error_line(run(["tokenizer", "train", "--vocab-size", "500", "--out", str(tmp_path)]),
                   "--corpus")
    one_error_line(run(["tokenizer", "train", "--corpus", c, "--out", str(tmp_path)]),
                   "--vocab-size")
    one_error_line(run(["tokenizer", "train", "--corpus", c, "--vocab-size", "500"]), "--out")
    one_error_line(run(["tokenizer", "nope"]), "nope")
    one_error_line(run(["tokenizer", "train", "--corpus", c, "--vocab-size", "500",
                        "--out", str(tmp_path), "--min-frequency", "0"]), "--min-frequency")


def test_bad_corpus_content(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text \xff\xfe more")
    p = run(["tokenizer", "train", "--corpus", str(bad), "--vocab-size", "500",
             "--out", str(tmp_path / "o")])
    one_error_line(p, "bad.txt", "UTF-8", "offset 10")
    jl = tmp_path / "bad.jsonl"
    jl.write_text('{"text": "ok"}\n{"txt": "no text"}\n', encoding="utf-8")
    p = run(["tokenizer", "train", "--jsonl", str(jl), "--vocab-size", "500",
             "--out", str(tmp_path / "o")])
    one_error_line(p, "bad.jsonl:2")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    p = run(["tokenizer", "train", "--corpus", str(empty), "--vocab-size", "500",
             "--out", str(tmp_path / "o")])
    one_error_line(p, "empty")


def test_model_init_bad_tokenizer(tmp_path):
    p = run(["model", "init", "--preset", "micro", "--out", str(tmp_path / "m"),
             "--tokenizer", str(tmp_path / "missing.json")])
    one_error_line(p, "missing.json")
    # a tokenizer without the R1 tokens (and no config naming others)
    src = FIXTURES / "tokenizers" / "qwen3" / "tokenizer.json"
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "tokenizer.json").write_bytes(src.read_bytes())
    p = run(["model", "init", "--preset", "micro", "--out", str(tmp_path / "m2"),
             "--tokenizer", str(lone / "tokenizer.json")])
    one_error_line(p, "bos token")
