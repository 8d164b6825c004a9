"""Reference ids for the tokenizer test, from the Python `tokenizers` package.

Run from the repository root:

    build/venv-ref/bin/python tests/ref/make_tokenizer_fixtures.py

It reads the real tokenizers under $R1D_SHARED/fixtures/tokenizers (default
../shared) and writes tests/fixtures/tokenizer/corpus.json:

    {"corpus": [str, ...],
     "ids": {"qwen3": [[int, ...], ...], "llama3": ..., "deepseek_v3": ...},
     "decode": {"qwen3": [{"ids": [...], "skip_special": bool,
                           "text": str}, ...], ...},
     "nfc": [str or null, ...]}

`ids[name][i]` is Tokenizer.encode(corpus[i], add_special_tokens=False).ids;
the decode cases include id runs that cut UTF-8 characters in half (the
decoder must produce U+FFFD exactly where `tokenizers` does); `nfc[i]` is
the NFC form `tokenizers` computes for corpus[i] (null when unchanged), what
decode(encode(s)) gives back with the normalizing Qwen3 tokenizer.

It also compares the public reference (ref_public.json, made with
transformers.js) against `tokenizers` and prints any disagreement: the
Python package is the authority.

    ... make_tokenizer_fixtures.py --check-written PATH

loads a tokenizer.json written by r1d_tokenizer_write_bytelevel and prints
the ids of a few strings, to compare with the C loader by hand.

The corpus is deterministic (fixed seed)."""

import json
import os
import random
import sys

from tokenizers import Tokenizer, normalizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("R1D_SHARED", os.path.join(ROOT, "..", "shared"))
TOKDIR = os.path.join(SHARED, "fixtures", "tokenizers")
NAMES = {"qwen3": "qwen3", "llama3": "llama3", "deepseek_v3": "deepseek-v3"}
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.json")

HANDWRITTEN = [
    # code
    "def add(a, b):\n    return a + b\n\n\nprint(add(2, 3))  # 5\n",
    "class Foo(Bar):\n\tdef __init__(self, *args, **kwargs):\n\t\tsuper().__init__(*args)\n",
    "#include <stdio.h>\nint main(int argc, char **argv) {\n  for (int i = 0; i < argc; i++) printf(\"%s\\n\", argv[i]);\n  return 0;\n}\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const f = async (x) => { await fetch(`/api/${x}?q=1`); return x ?? null; };",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"héllo, 世界\")\n}\n",
    "SELECT u.id, COUNT(*) AS n FROM users u JOIN orders o ON o.user_id = u.id WHERE o.total > 100.50 GROUP BY u.id;",
    "<!DOCTYPE html>\n<html><body><div class=\"a b\">&nbsp;&lt;tag&gt;</div></body></html>",
    "#!/bin/sh\nset -eu\nfor f in *.txt; do\n  wc -l \"$f\" | awk '{print $1}' >> out.log 2>&1\ndone\n",
    "\\begin{align}\n  \\int_0^\\infty e^{-x^2}\\,dx &= \\frac{\\sqrt{\\pi}}{2} \\\\\n  \\sum_{n=1}^{\\infty} \\frac{1}{n^2} &= \\frac{\\pi^2}{6}\n\\end{align}",
    "x=1;y=2;z=x+y*3-4/5%6**7//8",
    "if (a&&b||!c) { a <<= 2; b >>= 3; c ^= ~d; }",
    "    \n    \n\t\n",
    "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\n\"}",
    "    def f(self):\n        pass\n    \n    \n",
    "// comment\n/* block\n * comment */\nint x; // trailing   \n",
    # whitespace
    "a  b   c    d     e",
    "trailing spaces   ",
    "   ",
    "\t\t\t",
    "\r\n\r\n",
    "\r\r\n\n\r",
    "line\n\n\n\n\n\n\n\n\nend",
    " \n \n \n ",
    "a \t b \t\t c",
    "x\u00a0y\u3000z\u2003w",
    "nel\u0085here\u2028ls\u2029ps",
    "mongolian\u180evs\u200bzwsp\u200czwnj\u200dzwj",
    "\u000b\u000c vertical tab and form feed",
    "\x1c\x1d\x1e\x1f separators",
    "\x00nul\x00bytes\x00",
    "bell\x07 and escape\x1b[0m",
    "  leading and trailing  \n",
    "word \n\n  word",
    "ends with newline and spaces\n   ",
    # contractions
    "I'm you're he's she'd we've they'll it'd",
    "I'M YOU'RE HE'S SHE'D WE'VE THEY'LL IT'D",
    "I'M You'Re He'S she'D We'vE They'lL",
    "don't won't can't shouldn't",
    "DON'T WON'T CAN'T",
    "the cat's toy, the cats' toys",
    "’s curly ’t and ‘quotes’ “double”",
    "'s 't 're 've 'm 'll 'd",
    "'S'T'RE'VE'M'LL'D",
    "x'sy 'ſ 'K 'ﬅ",
    "''''''",
    "rock'n'roll o'clock y'all",
    # numbers
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567",
    "12345678901234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "1,000,000 and 1.000.000 and 1 000 000",
    "-0.5e-10 +1E+99 0x1F 0b1010 0o777 1_000_000",
    "٠١٢٣٤٥٦٧٨٩ ۰۱۲۳ ०१२३४५६७८९ ０１２３４５",
    "Ⅻ ½ ¾ ² ³ ① ⑳",
    "2024-01-15T10:30:00Z 192.168.0.1:8080",
    "$1,234.56 €99 ¥1000 £5",
    # CJK and other scripts
    "我爱北京天安门，天安门上太阳升。",
    "這是繁體中文的句子，還有標點符號！",
    "東京都渋谷区でラーメンを食べました。とてもおいしかったです！",
    "ｶﾀｶﾅ半角 と ＡＢＣ全角",
    "서울특별시 강남구에서 만나요. 안녕하세요!",
    "\u1100\u1161\u11a8 decomposed hangul \u1112\u1161\u11ab\u1100\u1173\u11af",
    "が vs \u304b\u3099 and パ vs \u30cf\u309a",
    "𠀀𠀁𪚥 rare CJK extension B",
    "مرحبا بكم في العالم العربي. ١٢٣",
    "שלום עולם! עברית עם ניקוד: שָׁלוֹם",
    "नमस्ते दुनिया। हिन्दी में लिखा गया वाक्य।",
    "สวัสดีครับ ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "வணக்கம் உலகம்",
    "გამარჯობა მსოფლიო",
    "Բարեւ աշխարհ",
    "ሰላም ልዑል",
    "Γειά σου Κόσμε! ΑΒΓΔ αβγδ",
    "Здравствуй, мир! ЁЖИК ёжик",
    "Tiếng Việt có dấu: Đường phố Hà Nội",
    "Ελληνικά και English και 中文 mixed",
    "Ünïcödé çàn bé tríckÿ: naïve café résumé Zürich",
    # combining marks
    "e\u0301 a\u0300 o\u0302 u\u0308 n\u0303",
    "A\u030a \u212b \u00c5 Ohm \u2126 Kelvin \u212a",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u0314\u036b\u0346\u0329\u0316l\u0350\u036dg\u030co",
    "q\u0323\u0307 vs q\u0307\u0323 ordering",
    "\u0301 leading combining mark",
    "ﬁ ﬂ ligatures and ㎏ ㎞ compatibility",
    "\u0958 \u0915\u093c nukta",
    "\u0374 \u037e \u0387 singletons",
    "\uf900 \uf91d compat ideographs",
    # characters whose tables differ between libraries (Unicode versions):
    # marks `tokenizers`' NFC treats as starters, letters and symbols that
    # are new in Unicode 15/16, Mongolian vowel separator (not \\s there)
    "a\u0899\u0316 a\u1df6\u0316 e\u0301\u07fd\u0316 \U00011935\U00011930",
    "x\u1dfa\u0334y \U00016ff0\u0301 q\u0c3c\u0323",
    "a\u1c89b x\u1c89 \u1c89\u1c8a \ua7cbz",
    "a\u2427 \u2427b word\u1b4e! 12\U00010d40\U00010d41 3",
    "x\U00011f00\U00011f34y ab\u0897cd \u180e\u180e x",
    # emoji
    "😀😃😄😁😆",
    "👍 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿",
    "👨‍👩‍👧‍👦 👩‍❤️‍💋‍👨 🏳️‍🌈 🏴‍☠️",
    "🇫🇷🇩🇪🇯🇵🇺🇸 🇬🇧",
    "1️⃣ 2️⃣ #️⃣ *️⃣",
    "❤️ ❤ ☺️ ☺",
    "🧑🏽‍💻 coding 🚀🚀🚀 launch",
    "text😀text",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿 scotland tag sequence",
    # punctuation and symbols
    "!!!", "???", "...", "---", "___", "***", "~~~", "```python\nx\n```",
    "Hello!!! What??? Really...",
    "«guillemets» „German“ 「Japanese」 『brackets』",
    "→ ← ↑ ↓ ⇒ ∀x∈ℝ: x² ≥ 0 ∑ ∏ ∫ √ ∞ ≠ ≈",
    "© ® ™ § ¶ † ‡ • ‰ ′ ″",
    "@user #hashtag $var %mod ^caret &amp *star",
    "a.b.c a-b-c a_b_c a/b/c a\\b\\c",
    "https://www.example.org/a/b?c=d&e=f#g",
    "foo@bar.com, mailto:x@y.z",
    "C:\\Users\\name\\file.txt",
    # special tokens written in text
    "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|im_start|>",
    "<|im_start", "<|im_start|", "im_start|>", "<<|im_end|>>",
    "<think>\nreasoning here\n</think>\n\nanswer",
    "<think></think>",
    "x<think>y</think>z",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|reserved_special_token_0|><|reserved_special_token_250|>",
    "<|begin_of_text|", "<|eot_id|><|eot_id|>",
    "<｜begin▁of▁sentence｜><｜User｜>Hello<｜Assistant｜><think>\n",
    "<｜end▁of▁sentence｜>",
    "<｜fim▁begin｜>a<｜fim▁hole｜>b<｜fim▁end｜>",
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get",
    "<｜User｜ <｜User｜> <｜User",
    "text <|im_end|> text",
    " <|im_start|> ",
    "\n<|im_end|>\n",
    "é<|im_end|>\u0301",
    # long and repeated
    "a" * 1000,
    "ab" * 500,
    "x" * 257,
    " " * 100,
    "\n" * 64,
    "\t" * 33 + "x",
    "!" * 300,
    "1" * 100,
    "中" * 200,
    "😀" * 50,
    "é" * 100,
    "e\u0301" * 50,
    "supercalifragilisticexpialidocious" * 20,
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
    "-" * 80 + "\n" + "=" * 80,
    "ha" * 100 + "!",
    # misc
    "", " ", "\n", "a", "A", "é", "中", "😀",
    "The quick brown fox jumps over the lazy dog. " * 5,
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
    "Mr. O'Neil's 3rd-floor apt. #12B (rent: $1,200/mo.) isn't cheap!",
    "CamelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case-id",
    "HTTPServerError XMLHttpRequest iPhone eBay McDonald's",
]

POOLS = [
    "the of and to in is that for it as with was on be by this",
    "深度 学习 模型 推理 数学 问题 答案 计算",
    "ひらがな カタカナ 漢字 テスト です ます",
    "한국어 테스트 문장 입니다",
    "привет мир тест слово",
    "مرحبا عالم كلمة اختبار",
    "नमस्ते दुनिया परीक्षण",
    "ภาษาไทย ทดสอบ",
    "0 1 12 123 1234 12345 3.14 -7 1e5",
    "! ? . , ; : ' \" ( ) [ ] { } < > / \\ | - _ + = * & ^ % $ # @ ~ `",
    "😀 👍🏽 👨‍👩‍👧 🇯🇵 ❤️ ✨",
    "e\u0301 a\u0308 \u0301 n\u0303",
    "<|im_start|> <|im_end|> <think> </think> <|eot_id|> <｜User｜> <｜Assistant｜>",
    "'s 'T 're 'VE 'm 'll 'D",
]
SEPS = ["", " ", "  ", "\n", "\t", "\r\n", " \n", "\n\n", "\u00a0", "\u3000"]


def random_strings(n, seed=20240611):
    rng = random.Random(seed)
    words = [p.split(" ") for p in POOLS]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choice(words)
            parts.append(rng.choice(pool) if pool else "")
            parts.append(rng.choice(SEPS))
        out.append("".join(parts))
    # random code points from assorted blocks, including unassigned ones
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF),
              (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F),
              (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x23FF),
              (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x1D400, 0x1D7FF)]
    for _ in range(n // 2):
        s = []
        for _ in range(rng.randint(1, 40)):
            lo, hi = rng.choice(blocks)
            s.append(chr(rng.randint(lo, hi)))
        out.append("".join(s))
    return out


def decode_cases(tok, corpus_ids, rng):
    cases = []
    # whole encodings, with and without special tokens
    for ids in corpus_ids[:60]:
        for skip in (False, True):
            cases.append({"ids": ids, "skip_special": skip,
                          "text": tok.decode(ids, skip_special_tokens=skip)})
    # runs that cut multi-byte characters: single byte tokens and slices
    text = "é中😀👨‍👩‍👧 ā ½ ﬁ"
    ids = tok.encode(text, add_special_tokens=False).ids
    for a in range(len(ids)):
        for b in range(a + 1, min(len(ids), a + 4) + 1):
            cases.append({"ids": ids[a:b], "skip_special": False,
                          "text": tok.decode(ids[a:b], skip_special_tokens=False)})
    vocab = tok.get_vocab_size(with_added_tokens=False)
    for _ in range(40):
        ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 6))]
        cases.append({"ids": ids, "skip_special": False,
                      "text": tok.decode(ids, skip_special_tokens=False)})
    return cases


def check_public(toks):
    with open(os.path.join(TOKDIR, "ref_public.json")) as f:
        ref = json.load(f)
    bad = 0
    for key, tok in toks.items():
        for case in ref[key]:
            ids = tok.encode(case["text"], add_special_tokens=False).ids
            if ids != case["ids"]:
                bad += 1
                print(f"ref_public disagrees with tokenizers: {key} "
                      f"{case['text']!r}: js {case['ids']} py {ids}")
    print(f"ref_public.json: {bad} disagreements with tokenizers")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check-written":
        tok = Tokenizer.from_file(sys.argv[2])
        for s in ["hello world", "é<think>x</think>", "Hello, 世界! 123"]:
            print(json.dumps(s), tok.encode(s, add_special_tokens=False).ids)
        return
    toks = {k: Tokenizer.from_file(os.path.join(TOKDIR, d, "tokenizer.json"))
            for k, d in NAMES.items()}
    check_public(toks)
    corpus = HANDWRITTEN + random_strings(160)
    nfc = normalizers.NFC()
    out = {"corpus": corpus, "ids": {}, "decode": {},
           "nfc": [nfc.normalize_str(s) if nfc.normalize_str(s) != s else None
                   for s in corpus]}
    for key, tok in toks.items():
        ids = [tok.encode(s, add_special_tokens=False).ids for s in corpus]
        out["ids"][key] = ids
        out["decode"][key] = decode_cases(tok, ids, random.Random(7))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    print(f"wrote {OUT}: {len(corpus)} strings, "
          f"{os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
