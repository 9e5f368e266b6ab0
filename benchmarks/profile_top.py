"""Where the time goes: the top of a py-spy profile, by function.

Record a command with py-spy in its "raw" (collapsed stacks) format, following subprocesses
(notebook kernels, Dask workers), then summarise it:

    .venv/bin/pip install py-spy
    py-spy record --subprocesses --rate 20 --format raw -o /tmp/book.prof -- make book
    .venv/bin/python benchmarks/profile_top.py /tmp/book.prof --title "quick book, cold" \\
        --out benchmarks/results/profile_book.md

Each line of a raw profile is ``frame;frame;...;frame count``, outermost frame first, each frame
``function (file:line)``. A function's *inclusive* share is the fraction of samples in which it
appears anywhere on the stack (counted once per sample); its *self* share is the fraction in
which it is the innermost Python frame. Idle samples (py-spy's default leaves them out) do not
count. Frames are keyed by function and file, not line.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_key(frame: str) -> str:
    """``function (file)`` with the line number and site-packages prefix dropped."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if "/mia_utils/" in path:
        path = "mia_utils/" + path.split("/mia_utils/", 1)[1]
    return f"{match['function']} ({path})"


def summarise(lines) -> tuple[int, Counter, Counter]:
    """Total samples and per-function inclusive and self sample counts."""
    total, inclusive, own = 0, Counter(), Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line or " " not in line:
            continue
        stack, count = line.rsplit(" ", 1)
        count = int(count)
        frames = [frame_key(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        for key in set(frames):
            inclusive[key] += count
        own[frames[-1]] += count
    return total, inclusive, own


def table(total: int, counts: Counter, top: int, title: str) -> list[str]:
    rows = [f"### {title}", "", "| share | samples | function |", "|---:|---:|---|"]
    for key, count in counts.most_common(top):
        rows.append(f"| {100 * count / total:.1f} % | {count:,} | `{key}` |")
    return rows + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="a py-spy profile recorded with --format raw")
    parser.add_argument("--title", default="profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", default="mia_utils/",
                        help="inclusive table: only frames whose file contains this (default: the package's)")
    parser.add_argument("--out", help="write the markdown here as well")
    args = parser.parse_args()
    total, inclusive, own = summarise(Path(args.profile).read_text().splitlines())
    if total == 0:
        raise SystemExit(f"profile: {args.profile} holds no samples")
    ours = Counter({k: v for k, v in inclusive.items() if args.filter in k})
    lines = [f"# Profile: {args.title}", "", f"{total:,} samples (py-spy, raw format, subprocesses followed).", "",
             *table(total, ours, args.top, f"Inclusive time in functions from `{args.filter}`"),
             *table(total, own, args.top, "Self time (innermost Python frame), any file")]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
