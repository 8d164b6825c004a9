"""Makes the chat-template fixtures of tests/engine/test_template.c.

Run from the repository root:
    build/venv-ref/bin/python tests/ref/make_template_fixtures.py

The authority is transformers' tokenizer.apply_chat_template(messages,
tokenize=False, add_generation_prompt=...) with the published Jinja templates
(Python jinja2). The script writes, under tests/fixtures/templates/:
  qwen2.5/tokenizer_config.json          Qwen2.5-Instruct's chat template (the
                                          "chatml" kind; bos null, eos <|im_end|>)
  llama3-instruct/tokenizer_config.json  the later Meta-Llama-3-Instruct
                                          template, whose generation prompt
                                          depends on add_generation_prompt
  llama3.1/tokenizer_config.json         Llama-3.1-Instruct's template (also
                                          Llama-3.3-70B-Instruct's): a system
                                          header with the knowledge cutoff and
                                          the default date "26 Jul 2024"
  conversations.json                     our own conversations
  expected.json                          {"cases": [{template, conversation,
                                          add_generation_prompt, text|error}],
                                          "reference_overrides": [...]}
It also re-renders every entry of $R1D_SHARED/fixtures/templates/
reference_public.json (made with a JavaScript Jinja port) and lists in
"reference_overrides" each entry where transformers renders something else;
the C test then expects transformers' text. Nothing here is random.

r1d's own conventions, mirrored here so that the C renderers see the same
input as the Jinja templates: OpenAI content parts are concatenated before
templating, null values count as absent (as transformers drops None keys), and
"thinking"/"reasoning" alias "reasoning_content" (as transformers does).
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile

from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("R1D_SHARED", os.path.join(ROOT, "..", "shared"))
FIX = os.path.join(SHARED, "fixtures")
OUT = os.path.join(ROOT, "tests", "fixtures", "templates")

# Qwen2.5-Instruct's tokenizer_config.json "chat_template", as its JSON text.
QWEN25_TEMPLATE_JSON = r'''"{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"'''

# The later Meta-Llama-3-Instruct template (generation prompt made optional).
LLAMA3_INSTRUCT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# meta-llama/Llama-3.1-8B-Instruct's tokenizer_config.json "chat_template", as
# its JSON text (Llama-3.3-70B-Instruct ships the same one). Taken from two
# independent public copies that agree byte for byte (4614 characters, sha256
# e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65):
#   llama.cpp models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja and
#     meta-llama-Llama-3.3-70B-Instruct.jinja (one git blob, 33089ace),
#   openvino.genai tests/python_tests/data/tokenizer_configs.py, keys
#     "meta-llama/Llama-3.1-8B-Instruct" and "meta-llama/Meta-Llama-3.1-8B-Instruct".
LLAMA31_TEMPLATE_JSON = r'''"{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n{%- endif %}\n{%- if not tools_in_user_message is defined %}\n    {%- set tools_in_user_message = true %}\n{%- endif %}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n\n{#- This block extracts the system message, so we can slot it into the right place. #}\n{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n\n{#- System message + builtin tools #}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{%- if builtin_tools is defined or tools is not none %}\n    {{- \"Environment: ipython\\n\" }}\n{%- endif %}\n{%- if builtin_tools is defined %}\n    {{- \"Tools: \" + builtin_tools | reject('equalto', 'code_interpreter') | join(\", \") + \"\\n\\n\"}}\n{%- endif %}\n{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n{%- if tools is not none and not tools_in_user_message %}\n    {{- \"You have access to the following functions. To call a function, please respond with JSON for a function call.\" }}\n    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.' }}\n    {{- \"Do not use variables.\\n\\n\" }}\n    {%- for t in tools %}\n        {{- t | tojson(indent=4) }}\n        {{- \"\\n\\n\" }}\n    {%- endfor %}\n{%- endif %}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n\n{#- Custom tools are passed in a user message with some extra guidance #}\n{%- if tools_in_user_message and not tools is none %}\n    {#- Extract the first user message so we can plug it in here #}\n    {%- if messages | length != 0 %}\n        {%- set first_user_message = messages[0]['content']|trim %}\n        {%- set messages = messages[1:] %}\n    {%- else %}\n        {{- raise_exception(\"Cannot put tools in the first user message when there's no first user message!\") }}\n{%- endif %}\n    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n    {{- \"Given the following functions, please respond with a JSON for a function call \" }}\n    {{- \"with its proper arguments that best answers the given prompt.\\n\\n\" }}\n    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.' }}\n    {{- \"Do not use variables.\\n\\n\" }}\n    {%- for t in tools %}\n        {{- t | tojson(indent=4) }}\n        {{- \"\\n\\n\" }}\n    {%- endfor %}\n    {{- first_user_message + \"<|eot_id|>\"}}\n{%- endif %}\n\n{%- for message in messages %}\n    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n    {%- elif 'tool_calls' in message %}\n        {%- if not message.tool_calls|length == 1 %}\n            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}\n        {%- endif %}\n        {%- set tool_call = message.tool_calls[0].function %}\n        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}\n            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n            {{- \"<|python_tag|>\" + tool_call.name + \".call(\" }}\n            {%- for arg_name, arg_val in tool_call.arguments | items %}\n                {{- arg_name + '=\"' + arg_val + '\"' }}\n                {%- if not loop.last %}\n                    {{- \", \" }}\n                {%- endif %}\n                {%- endfor %}\n            {{- \")\" }}\n        {%- else  %}\n            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n            {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n            {{- '\"parameters\": ' }}\n            {{- tool_call.arguments | tojson }}\n            {{- \"}\" }}\n        {%- endif %}\n        {%- if builtin_tools is defined %}\n            {#- This means we're in ipython mode #}\n            {{- \"<|eom_id|>\" }}\n        {%- else %}\n            {{- \"<|eot_id|>\" }}\n        {%- endif %}\n    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n        {%- if message.content is mapping or message.content is iterable %}\n            {{- message.content | tojson }}\n        {%- else %}\n            {{- message.content }}\n        {%- endif %}\n        {{- \"<|eot_id|>\" }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n"'''
LLAMA31_TEMPLATE_SHA256 = "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65"

# The R1-Zero prompt (DeepSeek-R1 paper, Table 1; shared/design/RL.md).
R1_ZERO = ("A conversation between User and Assistant. The user asks a question, "
           "and the Assistant solves it. The assistant first thinks about the "
           "reasoning process in the mind and then provides the user with the "
           "answer. The reasoning process and answer are enclosed within <think> "
           "</think> and <answer> </answer> tags, respectively, i.e., <think> "
           "reasoning process here </think> <answer> answer here </answer>. "
           "User: {prompt}. Assistant:")


def u(c):
    return {"role": "user", "content": c}


def a(c, **kw):
    m = {"role": "assistant", "content": c}
    m.update(kw)
    return m


def s(c):
    return {"role": "system", "content": c}


CONVERSATIONS = [
    [u("What is 17 * 23?")],
    [s("You are a careful math tutor."), u("Simplify 12/18.")],
    [s("First system."), s("Second system."), u("Hi")],
    [u("Question one"), s("A system message in the middle."), u("Question two")],
    [u("2+2?"), a("4"), u("And 3+3?")],
    [u("2+2?"), a("<think>\nAdd two and two.\n</think>\n\n4"), u("And 3+3?")],
    [u("2+2?"), a("<think>\nAdd two and two.\n</think>\n\nThe answer is 4.")],
    [u("2+2?"), a("The answer is 4.", reasoning_content="Two plus two is four.")],
    [u("2+2?"), a("The answer is 4.", reasoning_content=""), u("Thanks")],
    [u("Hi"), a("<think>a</think>b</think>\n\nc")],
    [u("Hi"), a("no opening tag</think>\n\nanswer"), u("More?")],
    [u(""), a("")],
    [u("Hi"), a(""), u("")],
    [s("  padded system \n"), u("  \n\t hello \n\n"), a("\n\nanswer with blank lines\n\n")],
    [u("\u3000full-width space\u00a0"), a("\u200bzero width stays\u200b"), u("\x1c\x85sep\u2028")],
    [s("你是一个乐于助人的助手。"), u("请计算 3×7 🧮，并用中文回答。"), a("<think>\n三乘七等于二十一。\n</think>\n\n答案是 21 🎉")],
    [s("Only a system message.")],
    [a("An assistant speaks first."), u("Then the user.")],
    [u("Find x."), a("<think>\nstep 1\n</think>\n\nLet me check.", reasoning_content=None),
     u("<tool_response>x = 3</tool_response>"), a("<think>\nverified\n</think>\n\nx = 3")],
    [u("Q1"), a("<think>t1</think>A1"), u("Q2"), a("<think>t2</think>A2"), u("Q3"),
     a("<think>\n\nt3\n\n</think>\n\n\nA3")],
    [u("Q"), a("content with </think> inside", reasoning_content="\nreasoning\n\n")],
    [s("Windows\r\nline endings\r\n"), u("line one\r\nline two\r\n")],
    [s(""), u("Empty system prompt before me.")],
    [u("Say <|im_end|> and <｜end▁of▁sentence｜> and <|eot_id|> literally.")],
    [u("Q"), a("A", reasoning_content="")],
    [u("Q"), a("A", thinking="aliased thought")],
    [u("Q"), {"role": "assistant", "content": None, "reasoning": "only reasoning"}],
    [{"role": "user", "content": [{"type": "text", "text": "part one, "},
                                  {"type": "text", "text": "part two"}]}],
    [s("sys A"), u("u1"), a("<think>r1</think>a1"), s("sys B"), u("u2"), a("a2", reasoning_content="r2"),
     u("u3")],
    [s("No user at all."), a("<think>\nr1\n</think>\n\nfirst"), a("<think>r2</think>second")],
]

# label -> how to obtain the tokenizer (family dir, or a copied config)
TEMPLATE_SOURCES = {
    "r1-distill": ("deepseek-v3", os.path.join(FIX, "templates", "r1-distill", "tokenizer_config.json")),
    "deepseek-v3": ("deepseek-v3", None),
    "qwen3": ("qwen3", None),
    "chatml": ("qwen3", os.path.join(OUT, "qwen2.5", "tokenizer_config.json")),
    "llama3": ("llama3", None),
    "llama3-instruct": ("llama3", os.path.join(OUT, "llama3-instruct", "tokenizer_config.json")),
    "llama3.1": ("llama3", os.path.join(OUT, "llama3.1", "tokenizer_config.json")),
}
# The order of expected.json's cases; llama3.1 came last, after r1-zero.
LABELS = [label for label in TEMPLATE_SOURCES if label != "llama3.1"] + ["r1-zero", "llama3.1"]


def normalize(messages):
    """r1d's message normalisation (see docstring): what the C parser does."""
    out = []
    for m in messages:
        m = {k: v for k, v in m.items() if v is not None}
        c = m.get("content", "")
        if isinstance(c, list):
            c = "".join(p["text"] for p in c if p.get("type") == "text")
        m["content"] = c
        reasoning = next((m[k] for k in ("reasoning_content", "thinking", "reasoning") if k in m), None)
        for k in ("thinking", "reasoning"):
            m.pop(k, None)
        if reasoning is not None:
            m["reasoning_content"] = reasoning
        out.append(m)
    return out


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def write_configs():
    write_json(os.path.join(OUT, "qwen2.5", "tokenizer_config.json"), {
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "tokenizer_class": "Qwen2Tokenizer", "chat_template": json.loads(QWEN25_TEMPLATE_JSON)})
    llama_cfg = json.load(open(os.path.join(FIX, "tokenizers", "llama3", "tokenizer_config.json")))
    write_json(os.path.join(OUT, "llama3-instruct", "tokenizer_config.json"), {
        "bos_token": llama_cfg["bos_token"], "eos_token": "<|eot_id|>",
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": LLAMA3_INSTRUCT_TEMPLATE})
    llama31 = json.loads(LLAMA31_TEMPLATE_JSON)
    assert hashlib.sha256(llama31.encode()).hexdigest() == LLAMA31_TEMPLATE_SHA256
    write_json(os.path.join(OUT, "llama3.1", "tokenizer_config.json"), {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": llama31})


def load_tokenizers(tmp):
    toks = {}
    for label, (family, config) in TEMPLATE_SOURCES.items():
        src = os.path.join(FIX, "tokenizers", family)
        if config is None:
            toks[label] = AutoTokenizer.from_pretrained(src)
            continue
        d = os.path.join(tmp, label)
        os.makedirs(d)
        shutil.copy(os.path.join(src, "tokenizer.json"), d)
        shutil.copy(config, os.path.join(d, "tokenizer_config.json"))
        toks[label] = AutoTokenizer.from_pretrained(d)
    return toks


def render(tok, messages, agp):
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=agp)


def render_r1_zero(messages):
    if len(messages) != 1 or messages[0]["role"] != "user":
        return None
    return R1_ZERO.format(prompt=messages[0]["content"])


def check_reference(toks):
    ref = json.load(open(os.path.join(FIX, "templates", "reference_public.json"), encoding="utf-8"))
    overrides = []
    for label, entries in ref.items():
        for i, e in enumerate(entries):
            got = render(toks[label], normalize(e["messages"]), e["add_generation_prompt"])
            if got != e["text"]:
                print(f"reference_public.json {label}[{i}]: transformers differs:\n"
                      f"  js:           {e['text']!r}\n  transformers: {got!r}", file=sys.stderr)
                overrides.append({"template": label, "index": i, "text": got})
    print(f"reference_public.json: {sum(len(v) for v in ref.values())} entries, "
          f"{len(overrides)} disagree with transformers")
    return overrides


def main():
    write_configs()
    write_json(os.path.join(OUT, "conversations.json"), CONVERSATIONS)
    with tempfile.TemporaryDirectory() as tmp:
        toks = load_tokenizers(tmp)
        overrides = check_reference(toks)
        cases = []
        for label in LABELS:
            for ci, conv in enumerate(CONVERSATIONS):
                msgs = normalize(conv)
                for agp in (False, True):
                    case = {"template": label, "conversation": ci, "add_generation_prompt": agp}
                    text = render_r1_zero(msgs) if label == "r1-zero" else render(toks[label], msgs, agp)
                    if text is None:
                        case["error"] = "unsupported"
                    else:
                        case["text"] = text
                    cases.append(case)
    write_json(os.path.join(OUT, "expected.json"), {"cases": cases, "reference_overrides": overrides})
    print(f"expected.json: {len(cases)} cases")


if __name__ == "__main__":
    main()
