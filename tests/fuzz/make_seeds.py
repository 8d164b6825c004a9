"""make_seeds.py - writes small seed corpora for the fuzz harnesses.

Run by tests/fuzz/build.sh:  python3 make_seeds.py ROOT SHARED OUTDIR
Seeds come from the committed fixtures (tests/fixtures, $R1D_SHARED/fixtures)
plus a few hand-written edge cases; nothing here is committed. Uses only the
standard library and is deterministic.
"""
import json
import os
import struct
import sys


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def st_file(header, data=b""):
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds(root, out):
    d = os.path.join(out, "safetensors")
    # Real files are big (0.5 MB); keep the header and a short data tail.
    for i, p in enumerate([
            "tests/fixtures/safetensors/small.safetensors",
            "tests/fixtures/models/tiny-llama/model.safetensors",
            "tests/fixtures/models/tiny-qwen2/model.safetensors"]):
        with open(os.path.join(root, p), "rb") as f:
            raw = f.read()
        n = struct.unpack("<Q", raw[:8])[0]
        write(d, "real%d" % i, raw[:8 + n + 256] if i else raw)
    write(d, "f32", st_file({"a": {"dtype": "F32", "shape": [2, 2],
                                   "data_offsets": [0, 16]}}, bytes(16)))
    write(d, "meta", st_file({"__metadata__": {"format": "pt"},
                              "b": {"dtype": "BF16", "shape": [3],
                                    "data_offsets": [0, 6]},
                              "c": {"dtype": "I8", "shape": [0, 5],
                                    "data_offsets": [6, 6]}}, bytes(6)))
    write(d, "empty", st_file({}))


def config_seeds(root, out):
    d = os.path.join(out, "config")
    for m in ("tiny-llama", "tiny-qwen2"):
        with open(os.path.join(root, "tests/fixtures/models", m,
                               "config.json"), "rb") as f:
            write(d, m, f.read())
    write(d, "rope_params", json.dumps({
        "architectures": ["LlamaForCausalLM"], "vocab_size": 10,
        "hidden_size": 8, "intermediate_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 2, "rope_parameters": {
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192},
        "eos_token_id": [1, 2], "head_dim": 4}))


def tokenizer_seeds(root, shared, out):
    d = os.path.join(out, "tokenizer")
    with open(os.path.join(shared, "fixtures/tokenizers/corpus_public.json"),
              encoding="utf-8") as f:
        corpus = json.load(f)
    with open(os.path.join(root, "tests/fixtures/tokenizer/corpus.json"),
              encoding="utf-8") as f:
        corpus += json.load(f)["corpus"]
    for i, s in enumerate(corpus[:48]):
        write(d, "c%02d" % i, s.encode("utf-8")[:2048])
    write(d, "special", "<|im_start|>user\nhi<|im_end|>\u0338"
          "<|begin_of_text|>  <think>\n</think>")
    write(d, "combining", "e\u0301 \u1e0b\u0323 \uac00\u11a8 \u0958")
    write(d, "bad_utf8", b"ok \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80")


def template_seeds(root, out):
    d = os.path.join(out, "template")
    with open(os.path.join(root, "tests/fixtures/templates/"
                           "conversations.json"), encoding="utf-8") as f:
        convs = json.load(f)
    for i, c in enumerate(convs[:24]):
        write(d, "conv%02d" % i, json.dumps(c, ensure_ascii=False))
    write(d, "parts", json.dumps([
        {"role": "system", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "a"},
                                     {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "<think>x</think>\n\ny",
         "reasoning_content": "r"},
        {"role": "user", "content": "<tool_response>t</tool_response>"}]))


def stop_seeds(out):
    d = os.path.join(out, "stop")
    # n_stops byte, (len, bytes) per stop, seed byte, text
    write(d, "one", b"\x00\x07</think>\x05a</thinkb</think> c")
    write(d, "two", b"\x01\x02abc\x01b\x83ababcabc")
    write(d, "utf8", b"\x00\x01\xc3\xa9\x11caf\xc3\xa9 au lait")


def main():
    root, shared, out = sys.argv[1:4]
    safetensors_seeds(root, out)
    config_seeds(root, out)
    tokenizer_seeds(root, shared, out)
    template_seeds(root, out)
    stop_seeds(out)


if __name__ == "__main__":
    main()
