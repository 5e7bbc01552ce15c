#!/usr/bin/env python3
"""The fused-activation table (GroupNorm + SiLU) from gn_bench's JSON (standard library only).

Usage: fused_report.py RUN.json [--command "how it was made"]

Per SD shape, layout and thread count, the medians of: plain GroupNorm (gn/f32_<layout>),
fused GroupNorm + SiLU (gn/f32_<layout>_silu), ours then a separate vectorized SiLU pass
(gn/f32_<layout>_then_silu) and PyTorch's group_norm then silu (torch_silu/f32_<layout>);
the ratios the issue states targets for (fused / plain <= 1.1; torch + silu / fused >= 2
NCHW, >= 1.8 channels-last, geomean, 1 thread), and their geomeans.

Then Skip + GroupNorm + SiLU with the sum written (gn/f32_<layout>_skip_silu) against plain
GroupNorm, the unfused sequence (gn/f32_<layout>_add_then_silu: an add pass, then our
GroupNorm + SiLU) and the bound the issue names: the fused op moves x and skip in, y and
sum out (roofline/f32_four_stream) where plain GroupNorm moves x in and y out
(roofline/f32, the copy): their ratio, measured in the same run, is the least fused / plain
can be on memory-bound shapes.

Then the backward of GroupNorm + SiLU (bwd/f32_<layout>_silu: dy through SiLU's derivative,
then GroupNorm's backward) against the plain backward (bwd/f32_<layout>) and what PyTorch's
autograd runs for silu(group_norm(x)) (torch_silu_bwd/f32_<layout>: silu_backward at the
saved output, then native_group_norm_backward).
"""
import argparse
import json
import math
import re
import sys

UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = re.sub(r"(/process_time)?(/real_time)?(_median)?$", "", b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            continue
        rows[name] = b["real_time"] * UNIT_MS[b.get("time_unit", "ns")]
    return rows, data.get("context", {})


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def ms(name):
    return lambda t: t.get(name)


def ratio(num, den):
    return lambda t: t[num] / t[den] if t.get(num) and t.get(den) else None


# Per table: the title's prefix, the benchmark of each named time ({layout}: nchw or nhwc),
# the two times a row needs, and the columns: (header, value of the row's times, ratio?).
# Every ratio column gets a geomean.
TABLES = [
    ("", {"plain": "gn/f32_{layout}", "fused": "gn/f32_{layout}_silu",
          "then": "gn/f32_{layout}_then_silu", "torch": "torch_silu/f32_{layout}"},
     [("plain", ms("plain"), False), ("fused + SiLU", ms("fused"), False),
      ("fused / plain", ratio("fused", "plain"), True), ("ours then SiLU pass", ms("then"), False),
      ("torch gn + silu", ms("torch"), False), ("torch / fused", ratio("torch", "fused"), True)]),
    ("Skip + GroupNorm + SiLU, sum written, ",
     {"plain": "gn/f32_{layout}", "fused": "gn/f32_{layout}_skip_silu",
      "then": "gn/f32_{layout}_add_then_silu", "four": "roofline/f32_four_stream",
      "copy": "roofline/f32"},
     [("plain", ms("plain"), False), ("skip fused", ms("fused"), False),
      ("fused / plain", ratio("fused", "plain"), True),
      ("bound: 4-stream / copy", ratio("four", "copy"), True),
      ("add pass then ours", ms("then"), False), ("unfused / fused", ratio("then", "fused"), True)]),
    ("Backward of GroupNorm + SiLU (dx, dgamma, dbeta), ",
     {"plain": "bwd/f32_{layout}", "fused": "bwd/f32_{layout}_silu",
      "torch": "torch_silu_bwd/f32_{layout}"},
     [("plain backward", ms("plain"), False), ("with SiLU", ms("fused"), False),
      ("SiLU / plain", ratio("fused", "plain"), True),
      ("torch silu + gn backward", ms("torch"), False), ("torch / ours", ratio("torch", "fused"), True)]),
]


def print_table(rows, shapes, prefix, names, columns, layout, threads):
    print(f"\n{prefix}{layout.upper()}, {threads} thread{'s' if threads > 1 else ''} (ms, median):\n")
    print("| shape | " + " | ".join(h for h, _, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    ratios = [[] for _ in columns]
    for s in shapes:
        t = {k: rows.get(v.format(layout=layout) + f"/{s}/threads:{threads}") for k, v in names.items()}
        if not t["plain"] or not t["fused"]:
            continue
        cells = []
        for (_, value, is_ratio), seen in zip(columns, ratios):
            v = value(t)
            if is_ratio and v:
                seen.append(v)
            cells.append("-" if not v else f"{v:.2f}x" if is_ratio else f"{v:.4g}")
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("| **geomean** |" + "".join(f" **{geomean(r):.2f}x** |" if c[2] else " |"
                                       for c, r in zip(columns, ratios)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--command", default="")
    args = ap.parse_args()
    rows, context = load(args.json)
    shapes = []
    for name in rows:
        m = re.match(r"gn/f32_nchw(?:_skip)?_silu/(sd_[^/]+)/threads:\d+$", name)
        if m and m.group(1) not in shapes:
            shapes.append(m.group(1))
    order = context.get("suite", "").split(",")
    shapes.sort(key=lambda s: order.index(s) if s in order else len(order))
    print(f"CPU: {context.get('cpu_model', '?')}; torch {context.get('torch_version', 'not built')}; "
          f"load average at start: {context.get('load_avg', '?')}")
    if args.command:
        print(f"\nCommand: `{args.command}`\n")
    for prefix, names, columns in TABLES:
        for threads in (1, 2):
            for layout in ("nchw", "nhwc"):
                print_table(rows, shapes, prefix, names, columns, layout, threads)


if __name__ == "__main__":
    sys.exit(main())
