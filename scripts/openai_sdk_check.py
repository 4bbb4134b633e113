"""The official openai SDK against powerinfer-server: every call asserts on its result.

Usage: openai_sdk_check.py <base_url> <api_key>
"""
import sys

import openai
from openai import OpenAI

base, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)

models = client.models.list()
model = models.data[0].id
print("models:", [m.id for m in models.data])

question = [{"role": "user", "content": "What is the capital of France?"}]
chat = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=24)
text = chat.choices[0].message.content
assert "Paris" in text, text
assert chat.choices[0].finish_reason in ("stop", "length"), chat
assert chat.usage.prompt_tokens > 0 and chat.usage.completion_tokens > 0, chat.usage
print("chat:", repr(text))

stream = client.chat.completions.create(
    model=model, messages=question, temperature=0, max_tokens=24, stream=True
)
parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
assert "".join(parts) == text, (parts, text)
print("streamed chunks:", len(parts))

prompt = "The capital of France is"
comp = client.completions.create(
    model=model, prompt=prompt, max_tokens=4, temperature=0, echo=True, logprobs=2
)
choice = comp.choices[0]
assert choice.text.startswith(prompt), choice.text
lp = choice.logprobs
assert lp.token_logprobs[0] is None and all(x <= 0 for x in lp.token_logprobs[1:]), lp
assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs), lp
print("completion:", repr(choice.text), "logprobs:", len(lp.token_logprobs))

sparse = client.chat.completions.create(
    model=model, messages=question, temperature=0, max_tokens=8,
    extra_body={"powerinfer": {"policy": "threshold:0.5"}},
)
density = sparse.model_extra["powerinfer"]["ffn_density"]
assert 0.3 < density < 0.7, density
print("threshold:0.5 density:", round(density, 3))

for call, error in [
    (lambda: client.chat.completions.create(model="gpt-7", messages=question), openai.NotFoundError),
    (lambda: client.chat.completions.create(model=model, messages=question, max_tokens=10**6), openai.BadRequestError),
    (lambda: OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list(), openai.AuthenticationError),
]:
    try:
        call()
    except error as e:
        assert e.body and "message" in e.body, e.body
        print("error as expected:", type(e).__name__, e.body["code"])
    else:
        raise AssertionError(f"expected {error.__name__}")
print("openai SDK check passed")
