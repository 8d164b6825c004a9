"""Chat completion streamed: the reasoning is printed (dimmed on a terminal)
after "thinking:" as it arrives, then the answer after "answer:".
Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] python chat_stream.py ["question"]"""
import sys

from _common import client, model

DIM, RESET = ("\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "")
c = client()
stream = c.chat.completions.create(model=model(c), max_tokens=128, stream=True,
                                   stream_options={"include_usage": True},
                                   messages=[{"role": "user", "content": " ".join(sys.argv[1:]) or "What is 12 + 30?"}])
part = None
for chunk in stream:
    if chunk.usage:
        print(f"\n[{chunk.usage.completion_tokens} tokens, "
              f"{chunk.usage.completion_tokens_details.reasoning_tokens} of them reasoning]")
    for choice in chunk.choices:
        d = choice.delta
        extra = d.model_extra or {}
        # "reasoning" when the server runs with --reasoning-field reasoning
        thought = getattr(d, "reasoning_content", None) or extra.get("reasoning_content") or extra.get("reasoning")
        if thought:
            if part != "thinking":
                print(f"thinking: {DIM}", end="")
                part = "thinking"
            print(thought, end="", flush=True)
        if d.content:
            if part != "answer":
                print(f"{RESET}\nanswer: ", end="")
                part = "answer"
            print(d.content, end="", flush=True)
        if choice.finish_reason:
            print(f"{RESET}\n[finish: {choice.finish_reason}]", end="")
print()
