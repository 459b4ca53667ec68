"""Prints ours vs transformers (default cache and static cache) from the bench's and the HF script's
JSON files, and, given the bench's `ops` and `bare_forward` scenarios too, the operators and host reads per
step and how much of a bare step the host takes to issue.

    python3 table.py OURS_JSON HF_JSON [OPS_JSON]

"same tokens" counts how many leading new tokens of the first prompt (the best beam) are those of
transformers' default mode: in half precision a different but valid rounding can flip a near tie
(random weights have many), after which the two runs continue from different tokens.
"""
import json
import sys

ours = {(r["batch"], r["beams"]): r for r in json.load(open(sys.argv[1]))["scenarios"] if r["name"] == "hf_compare"}
hf = json.load(open(sys.argv[2]))
theirs = {(r["batch"], r["beams"], r["mode"]): r for r in hf["rows"]}
ops, bare = {}, []
if len(sys.argv) > 3:
    extra = json.load(open(sys.argv[3]))["scenarios"]
    ops = {(r["batch"], r["beams"]): r for r in extra if r["name"] == "ops" and r["run"] != "bare forward, batch 1"}
    bare = [r for r in extra if r["name"] == "bare_forward"]


def same_tokens(a, b):
    if a is None or b is None:
        return "n/a"
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{same}/{len(b)}"


print(f"transformers {hf['transformers']}, torch {hf['torch']} on {hf.get('device', 'cuda')}; bf16 {hf.get('shape', 'qwen2.5-0.5b')} shape, random weights")
print("| run | lmdecode ms/step | HF default ms/step | HF static ms/step | HF default / ours | HF static / ours | same tokens as HF default | our ATen calls/step | our host reads/step |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for key, name in [((1, 1), "greedy batch 1"), ((8, 1), "greedy batch 8"), ((1, 4), "beam 4, batch 1")]:
    o = ours.get(key, {})
    d = theirs.get(key + ("default",), {})
    s = theirs.get(key + ("static",), {})
    mine = o.get("ms_per_step")
    fmt = lambda v: f"{v:.2f}" if v else "n/a"
    ratio = lambda v: f"{v / mine:.2f}x" if (v and mine) else "n/a"
    calls = f"{ops[key]['calls_per_step']:.0f}" if key in ops else "n/a"
    reads = f"{ops[key]['host_reads_per_step']:.2f}" if key in ops else "n/a"
    print(f"| {name} | {fmt(mine)} | {fmt(d.get('ms_per_step'))} | {fmt(s.get('ms_per_step'))} | {ratio(d.get('ms_per_step'))} "
          f"| {ratio(s.get('ms_per_step'))} | {same_tokens(o.get('tokens'), d.get('tokens'))} | {calls} | {reads} |")
for r in bare:
    print(f"bare forward, batch {r['batch']}, context {r['context']}: {r['ms_per_step']:.2f} ms a step, of which the host "
          f"issues it in {r['host_issue_ms']:.2f} ms ({100 * r['host_issue_share']:.0f}%: near 100% means launch-bound)")
