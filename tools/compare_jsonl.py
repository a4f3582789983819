"""Compare two ``edgekit deploy --jsonl`` files frame by frame (e.g. a Pi against x86).

Prints one summary line: frames, top-1 label agreement, and on how many
frames any of the top-k scores differ and by how much at most (an int8
model's scores move in steps of 1/256). Exits 1 if the frame sources or any
top-1 label differ.

    python tools/compare_jsonl.py x86.jsonl pi.jsonl
"""
from __future__ import annotations

import json
import sys


def _frames(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _topk(rec: dict) -> list[tuple[str, float]]:
    return [(str(t["label"]), float(t["score"])) for t in rec.get("topk") or []]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = _frames(argv[0]), _frames(argv[1])
    if [r.get("source") for r in a] != [r.get("source") for r in b]:
        print(f"{argv[1]}: {len(b)} frames, {argv[0]}: {len(a)}; the frame sources differ")
        return 1
    same_top1, scores_differ, worst, differ = 0, 0, 0.0, []
    for i, (ra, rb) in enumerate(zip(a, b)):
        ka, kb = _topk(ra), _topk(rb)
        if ka[:1] and kb[:1] and ka[0][0] == kb[0][0]:
            same_top1 += 1
        else:
            differ.append(i)
        sa, sb = dict(ka), dict(kb)
        diffs = [abs(sa[k] - sb.get(k, 0.0)) for k in sa] + [abs(sb[k] - sa.get(k, 0.0)) for k in sb]
        if any(d > 0 for d in diffs):
            scores_differ += 1
            worst = max(worst, *diffs)
    print(
        f"{argv[1]}: {len(b)} frames; top-1 labels identical on {same_top1}/{len(a)}; "
        f"top-k scores differ on {scores_differ} frames (max |diff| {worst:.6g})"
        + (f"; top-1 differs on frames {differ[:10]}" if differ else "")
    )
    return 0 if same_top1 == len(a) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
