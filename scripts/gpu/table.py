"""Prints ours vs transformers (default cache and static cache) from the bench's and the HF script's
JSON files, and, given the bench's `ops` scenario too, the operators and host reads per step.

    python3 table.py OURS_JSON HF_JSON [OPS_JSON]
"""
import json
import sys

ours = {(r["batch"], r["beams"]): r["ms_per_step"] for r in json.load(open(sys.argv[1]))["scenarios"] if r["name"] == "hf_compare"}
hf = json.load(open(sys.argv[2]))
theirs = {(r["batch"], r["beams"], r["mode"]): r.get("ms_per_step") for r in hf["rows"]}
ops = {}
if len(sys.argv) > 3:
    ops = {(r["batch"], r["beams"]): r for r in json.load(open(sys.argv[3]))["scenarios"] if r["name"] == "ops" and r["run"] != "bare forward, batch 1"}
print(f"transformers {hf['transformers']}, torch {hf['torch']} on {hf.get('device', 'cuda')}; bf16 {hf.get('shape', 'qwen2.5-0.5b')} shape, random weights")
print("| run | lmdecode ms/step | HF default ms/step | HF static ms/step | HF default / ours | HF static / ours | our ATen calls/step | our host reads/step |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for key, name in [((1, 1), "greedy batch 1"), ((8, 1), "greedy batch 8"), ((1, 4), "beam 4, batch 1")]:
    o = ours.get(key)
    d = theirs.get(key + ("default",))
    s = theirs.get(key + ("static",))
    fmt = lambda v: f"{v:.2f}" if v else "n/a"
    ratio = lambda v: f"{v / o:.2f}x" if (v and o) else "n/a"
    calls = f"{ops[key]['calls_per_step']:.0f}" if key in ops else "n/a"
    reads = f"{ops[key]['host_reads_per_step']:.2f}" if key in ops else "n/a"
    print(f"| {name} | {fmt(o)} | {fmt(d)} | {fmt(s)} | {ratio(d)} | {ratio(s)} | {calls} | {reads} |")
