"""Drives a running lmdecode-serve with OpenAI's own Python client (Debian sid's python3-openai):
both endpoints, streamed and whole, sampling with a seed, n = 2, a stop string, log-probs, the
model list and an error. Each streamed text must equal the whole one. Not part of CI (the client is
not in bookworm); scripts/compare-peers.sh serve runs it in the sid chroot.

    python3 openai_client_check.py BASE_URL API_KEY MODEL
"""
import sys

import openai

base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key=api_key)
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


models = [m.id for m in client.models.list()]
check("models.list names the model", model in models, str(models))

for params in ({}, {"temperature": 0.8, "top_p": 0.9, "seed": 11, "n": 2}, {"stop": [" the"]}):
    whole = client.completions.create(model=model, prompt="The secret of a happy life is", max_tokens=24, **params)
    streamed = [""] * len(whole.choices)
    finish = [None] * len(whole.choices)
    for chunk in client.completions.create(model=model, prompt="The secret of a happy life is", max_tokens=24, stream=True, **params):
        for c in chunk.choices:
            streamed[c.index] += c.text
            finish[c.index] = c.finish_reason or finish[c.index]
    check(f"completions {params}: streamed text equals whole", streamed == [c.text for c in whole.choices],
          f"{[c.text for c in whole.choices]!r}")
    check(f"completions {params}: finish reasons", finish == [c.finish_reason for c in whole.choices], str(finish))
    check(f"completions {params}: usage", whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 0, str(whole.usage))

messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a fortune."}]
whole = client.chat.completions.create(model=model, messages=messages, max_tokens=32, logprobs=True, top_logprobs=2)
text = ""
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=32, stream=True,
                                            stream_options={"include_usage": True}):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    elif chunk.usage:
        check("chat stream: usage chunk", chunk.usage.total_tokens == whole.usage.total_tokens, str(chunk.usage))
check("chat: streamed text equals whole", text == whole.choices[0].message.content, repr(whole.choices[0].message.content))
check("chat: log-probs of every token", len(whole.choices[0].logprobs.content) == whole.usage.completion_tokens)

try:
    client.completions.create(model=model, prompt="hi", max_tokens=-1)
    check("a bad max_tokens is refused", False)
except openai.BadRequestError as e:
    check("a bad max_tokens is refused (400)", e.status_code == 400, str(e.body))
try:
    client.completions.create(model="no-such-model", prompt="hi", max_tokens=4)
    check("an unknown model is refused", False)
except openai.NotFoundError as e:
    check("an unknown model is refused (404)", e.status_code == 404)

print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
