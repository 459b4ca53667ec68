"""Prints ours vs transformers (default cache and static cache) from the two JSON files."""
import json
import sys

ours = {(r["batch"], r["beams"]): r["ms_per_step"] for r in json.load(open(sys.argv[1]))["scenarios"] if r["name"] == "hf_compare"}
hf = json.load(open(sys.argv[2]))
theirs = {(r["batch"], r["beams"], r["mode"]): r.get("ms_per_step") for r in hf["rows"]}
print(f"transformers {hf['transformers']}, torch {hf['torch']}; bf16 Qwen2.5-0.5B shape, random weights")
print("| run | lmdecode ms/step | HF default ms/step | HF static ms/step | HF default / ours | HF static / ours |")
print("| --- | --- | --- | --- | --- | --- |")
for key, name in [((1, 1), "greedy batch 1"), ((8, 1), "greedy batch 8"), ((1, 4), "beam 4, batch 1")]:
    o = ours.get(key)
    d = theirs.get(key + ("default",))
    s = theirs.get(key + ("static",))
    fmt = lambda v: f"{v:.2f}" if v else "n/a"
    ratio = lambda v: f"{v / o:.2f}x" if (v and o) else "n/a"
    print(f"| {name} | {fmt(o)} | {fmt(d)} | {fmt(s)} | {ratio(d)} | {ratio(s)} |")
