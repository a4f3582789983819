"""Compare two ``edgekit deploy --jsonl`` files frame by frame (e.g. a Pi against x86).

Prints one summary line: frames, top-1 label agreement and the largest score
difference; exits 1 if the frames or any top-1 label differ.

    python tools/compare_jsonl.py x86.jsonl pi.jsonl
"""
from __future__ import annotations

import json
import sys


def _frames(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _top1(rec: dict) -> tuple[str, float]:
    top = rec.get("top") or rec.get("topk") or rec.get("predictions") or []
    if top:
        first = top[0]
        return str(first.get("label")), float(first.get("score", 0.0))
    return str(rec.get("label")), float(rec.get("score", 0.0))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = _frames(argv[0]), _frames(argv[1])
    if len(a) != len(b):
        print(f"{argv[1]}: {len(b)} frames, {argv[0]}: {len(a)}")
        return 1
    same = 0
    worst = 0.0
    differ = []
    for i, (ra, rb) in enumerate(zip(a, b)):
        (la, sa), (lb, sb) = _top1(ra), _top1(rb)
        if la == lb:
            same += 1
        else:
            differ.append(i)
        worst = max(worst, abs(sa - sb))
    score_diff = sum(1 for ra, rb in zip(a, b) if _top1(ra)[1] != _top1(rb)[1])
    print(
        f"{argv[1]}: {len(b)} frames, top-1 labels identical on {same}/{len(a)}, "
        f"top-1 score differs on {score_diff} frames (max |diff| {worst:.6g})"
        + (f"; differing frames: {differ[:10]}" if differ else "")
    )
    return 0 if same == len(a) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
