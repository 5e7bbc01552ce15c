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
    for threads in (1, 2):
        for layout in ("nchw", "nhwc"):
            print(f"\n{layout.upper()}, {threads} thread{'s' if threads > 1 else ''} (ms, median):\n")
            print("| shape | plain | fused + SiLU | fused / plain | ours then SiLU pass | torch gn + silu | torch / fused |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            ratios, speedups = [], []
            for s in shapes:
                tail = f"/{s}/threads:{threads}"
                plain = rows.get(f"gn/f32_{layout}{tail}")
                fused = rows.get(f"gn/f32_{layout}_silu{tail}")
                then = rows.get(f"gn/f32_{layout}_then_silu{tail}")
                torch = rows.get(f"torch_silu/f32_{layout}{tail}")
                if not plain or not fused:
                    continue
                r = fused / plain
                ratios.append(r)
                sp = torch / fused if torch else None
                if sp:
                    speedups.append(sp)
                fmt = lambda v: f"{v:.4g}" if v else "-"
                print(f"| {s} | {fmt(plain)} | {fmt(fused)} | {r:.2f}x | {fmt(then)} | {fmt(torch)} | "
                      f"{f'{sp:.2f}x' if sp else '-'} |")
            print(f"| **geomean** | | | **{geomean(ratios):.2f}x** | | | **{geomean(speedups):.2f}x** |")

    for threads in (1, 2):
        for layout in ("nchw", "nhwc"):
            print(f"\nSkip + GroupNorm + SiLU, sum written, {layout.upper()}, {threads} "
                  f"thread{'s' if threads > 1 else ''} (ms, median):\n")
            print("| shape | plain | skip fused | fused / plain | bound: 4-stream / copy | add pass then ours | unfused / fused |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            ratios, bounds, speedups = [], [], []
            for s in shapes:
                tail = f"/{s}/threads:{threads}"
                plain = rows.get(f"gn/f32_{layout}{tail}")
                fused = rows.get(f"gn/f32_{layout}_skip_silu{tail}")
                then = rows.get(f"gn/f32_{layout}_add_then_silu{tail}")
                four = rows.get(f"roofline/f32_four_stream{tail}")
                copy = rows.get(f"roofline/f32{tail}")
                if not plain or not fused:
                    continue
                ratios.append(fused / plain)
                bound = four / copy if four and copy else None
                if bound:
                    bounds.append(bound)
                sp = then / fused if then else None
                if sp:
                    speedups.append(sp)
                fmt = lambda v: f"{v:.4g}" if v else "-"
                print(f"| {s} | {fmt(plain)} | {fmt(fused)} | {fused / plain:.2f}x | "
                      f"{f'{bound:.2f}x' if bound else '-'} | {fmt(then)} | "
                      f"{f'{sp:.2f}x' if sp else '-'} |")
            print(f"| **geomean** | | | **{geomean(ratios):.2f}x** | **{geomean(bounds):.2f}x** | | "
                  f"**{geomean(speedups):.2f}x** |")

    for threads in (1, 2):
        for layout in ("nchw", "nhwc"):
            print(f"\nBackward of GroupNorm + SiLU (dx, dgamma, dbeta), {layout.upper()}, {threads} "
                  f"thread{'s' if threads > 1 else ''} (ms, median):\n")
            print("| shape | plain backward | with SiLU | SiLU / plain | torch silu + gn backward | torch / ours |")
            print("|---|---:|---:|---:|---:|---:|")
            ratios, speedups = [], []
            for s in shapes:
                tail = f"/{s}/threads:{threads}"
                plain = rows.get(f"bwd/f32_{layout}{tail}")
                fused = rows.get(f"bwd/f32_{layout}_silu{tail}")
                torch = rows.get(f"torch_silu_bwd/f32_{layout}{tail}")
                if not plain or not fused:
                    continue
                ratios.append(fused / plain)
                sp = torch / fused if torch else None
                if sp:
                    speedups.append(sp)
                fmt = lambda v: f"{v:.4g}" if v else "-"
                print(f"| {s} | {fmt(plain)} | {fmt(fused)} | {fused / plain:.2f}x | {fmt(torch)} | "
                      f"{f'{sp:.2f}x' if sp else '-'} |")
            print(f"| **geomean** | | | **{geomean(ratios):.2f}x** | | **{geomean(speedups):.2f}x** |")


if __name__ == "__main__":
    sys.exit(main())
