#!/usr/bin/env python3
"""Turns gn_bench's Google Benchmark JSON into bench/RESULTS.md and a chart, RESULTS.png.

Usage: report.py RUN.json [RERUN.json ...] [--out RESULTS.md] [--png RESULTS.png]
                 [--command "how it was made"]

Uses the median aggregate of each benchmark (--benchmark_repetitions); with a single
repetition, the median of the iterations rows. GB/s counts x read once + y written once,
in 1e9 bytes per second. With matplotlib (optional: without it, the table only), also a
chart of the forward's GB/s per shape (--png, default beside --out), linked from the table.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict

UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
# The targets the kernels are asked to reach (see the team's brief).
T_NCHW_GEOMEAN, T_NCHW_MIN, T_NHWC_GEOMEAN, T_ROOFLINE, T_HALF = 3.5, 2.0, 2.5, 0.90, 0.90
# Backward: vs torch's native_group_norm_backward, and its share of the 3-stream roofline.
T_BWD_NCHW_GEOMEAN, T_BWD_NCHW_MIN, T_BWD_NHWC_GEOMEAN, T_BWD_NHWC_MIN, T_BWD_ROOF = 1.5, 1.1, 3.0, 1.2, 0.70
# Two threads over one on shapes of 1 MB or more; larger than L3, 90% of the copy's own.
T_SCALE, T_SCALE_BOUND = 1.7, 0.90


def load(paths):
    """{(family, variant, shape, threads): {"ms", "gbs", "error"}}, and the first JSON's
    context. A benchmark in several files (a re-run of a subset) takes the last file's."""
    medians, samples, context = {}, defaultdict(list), None
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        context = context or data.get("context", {})
        for name in {run_name(b) for b in data["benchmarks"]}:
            medians.pop(name, None)
            samples.pop(name, None)
        read_benchmarks(data["benchmarks"], medians, samples)
    for name, points in samples.items():
        if name not in medians:
            medians[name] = {k: statistics.median(p[k] for p in points) for k in ("ms", "gbs", "cores")}
    rows = {}
    for name, point in medians.items():
        parts = name.split("/")
        if len(parts) == 4 and parts[3].startswith("threads:"):
            rows[(parts[0], parts[1], parts[2], int(parts[3][8:]))] = point
        else:
            rows[(parts[0], parts[1], "", 0)] = point
    return rows, context


def run_name(b):
    return re.sub(r"(/process_time)?(/real_time)?$", "", b.get("run_name", b["name"]))


def read_benchmarks(benchmarks, medians, samples):
    for b in benchmarks:
        name = run_name(b)
        if b.get("error_occurred"):
            medians[name] = {"error": b.get("error_message", "error")}
            continue
        # cores: process CPU time / real time (gn_bench measures process CPU time).
        point = {"ms": b["real_time"] * UNIT_MS[b.get("time_unit", "ns")],
                 "gbs": b.get("bytes_per_second", 0.0) / 1e9,
                 "cores": b["cpu_time"] / b["real_time"] if b.get("real_time") else 0.0}
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = point
        else:
            samples[name].append(point)


def l3_bytes(context):
    """L3 size: the benchmark's own cache report, else sysfs, else lscpu."""
    for c in context.get("caches", []):
        if c.get("level") == 3:
            return int(c["size"])
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            text = f.read().strip()
        return int(text.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[text[-1]]
    except (OSError, ValueError, KeyError):
        pass
    try:
        out = subprocess.run(["lscpu", "-B"], capture_output=True, text=True).stdout
        m = re.search(r"L3 cache:\s*(\d+)", out)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fmt(x, spec=".3g", suffix=""):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:{spec}}{suffix}"


def ratio(a, b):
    return a / b if a and b else None


def mark(ok):
    return "" if ok is None else (" ✅" if ok else " ❌")


# The chart's series: (label, family, variant for NCHW, variant for NHWC, style).
CHART_SERIES = (
    ("ours (dispatch: tuned where the shape's class is)", "gn", "f32_nchw", "f32_nhwc", "bar"),
    ("ours, default schedule", "gn", "f32_nchw_default", "f32_nhwc_default", "bar"),
    ("PyTorch (channels_last for NHWC)", "torch", "f32_nchw", "f32_nhwc", "bar"),
    ("copy roofline", "roofline", "f32", "f32", "line"),
    ("two-pass roofline (read x, then copy)", "roofline", None, "f32_two_pass", "line"),
)


def write_png(rows, ctx, shapes, path, l3):
    """The forward's GB/s (x read + y written) per shape, f32 NCHW and NHWC side by side,
    one row of panels per thread count (1 and 2). False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: no matplotlib, so no chart (pip install matplotlib)", file=sys.stderr)
        return False
    threads = [t for t in (1, 2) if any(k[:2] == ("gn", "f32_nchw") and k[3] == t for k in rows)]
    if not threads:
        return False

    def mbytes(s, t):  # x + y in MB (GB/s * ms), as the tables count it
        return max((rows.get(k, {}).get("gbs", 0) * rows.get(k, {}).get("ms", 0)
                    for k in (("gn", "f32_nchw", s, t), ("roofline", "f32", s, t))), default=0)

    order = sorted(shapes, key=lambda s: mbytes(s, threads[0]))  # smallest first
    fig, axes = plt.subplots(len(threads), 2, figsize=(16, 5.2 * len(threads) + 1.2),
                             squeeze=False, sharey=True)
    colors = {"gn": ("tab:blue", "tab:cyan"), "torch": ("tab:orange",)}
    low, legend = float("inf"), {}
    for row, t in enumerate(threads):
        for col, layout in enumerate(("NCHW", "NHWC")):
            ax = axes[row][col]
            series = []
            for label, fam, var_nchw, var_nhwc, style in CHART_SERIES:
                var = var_nhwc if layout == "NHWC" else var_nchw
                if var and any(k[:2] == (fam, var) and k[3] == t for k in rows):
                    series.append((label, fam, var, style))
            gbs = {}  # series -> {shape index: GB/s}
            for label, fam, var, style in series:
                gbs[label] = {i: mbytes(s, t) / rows[fam, var, s, t]["ms"]  # MB / ms = GB/s
                              for i, s in enumerate(order)
                              if rows.get((fam, var, s, t), {}).get("ms") and mbytes(s, t)}
                low = min([low] + list(gbs[label].values()))
            # Bars side by side within each shape's slot, as many as that shape has (the
            # default schedule only where the shape's class is tuned).
            bars = [x[0] for x in series if x[3] == "bar"]
            slot = {i: [b for b in bars if i in gbs[b]] for i in range(len(order))}
            used = defaultdict(int)
            for label, fam, var, style in series:
                xs, ys = list(gbs[label]), list(gbs[label].values())
                if style == "bar":
                    widths = [0.8 / len(slot[i]) for i in xs]
                    color = colors[fam][used[fam]]
                    used[fam] += 1
                    ax.bar([i - 0.4 + w * (slot[i].index(label) + 0.5) for i, w in zip(xs, widths)],
                           ys, widths, label=label, color=color, zorder=2)
                else:  # a roofline: a dash across the shape's group of bars
                    dashed = var != "f32"
                    ax.hlines(ys, [x - 0.45 for x in xs], [x + 0.45 for x in xs],
                              colors="0.45" if dashed else "k", linestyles="--" if dashed else "-",
                              lw=2, label=label, zorder=3)
            # Shapes whose x + y exceed L3: DRAM-bound, where the roofline is the bar to reach.
            big = [i for i, s in enumerate(order) if l3 and mbytes(s, t) * 1e6 > l3]
            if big and big[0] > 0:
                ax.axvline(big[0] - 0.5, color="0.6", ls=":", lw=1.2)
                ax.text(big[0] - 0.4, 0.98, f"x + y > L3 ({l3 >> 20} MiB) →",
                        transform=ax.get_xaxis_transform(), va="top", fontsize=8, color="0.35")
            ax.set_yscale("log")
            ax.grid(axis="y", which="both", alpha=0.3, zorder=0)
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels([f"{s} ({mbytes(s, t):.3g} MB)" for s in order], rotation=40,
                               ha="right", fontsize=8)
            ax.set_xlim(-0.6, len(order) - 0.4)
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
            ax.set_title(f"f32 {layout}, {t} thread{'s' if t > 1 else ''}", fontsize=11)
            if col == 0:
                ax.set_ylabel("GB/s (x read + y written), log scale")
    if low < float("inf"):
        axes[0][0].set_ylim(bottom=low / 1.6)  # shared: the lowest bar stays visible
    # One legend for all panels, bars first, in CHART_SERIES's order.
    labels = [x[0] for x in CHART_SERIES if x[0] in legend]
    fig.legend([legend[x] for x in labels], labels, loc="lower center", ncol=len(labels),
               fontsize=9, frameon=False)
    torch = ctx.get("torch_version")
    fig.suptitle(f"GroupNorm forward, achieved GB/s per shape: {ctx.get('cpu_model', '?')}, "
                 f"{ctx.get('num_cpus', '?')} CPUs; "
                 + (f"PyTorch {torch}" if torch else "no PyTorch")
                 + f"; git {ctx.get('git', '?')}, {ctx.get('date', '?')[:10]}", fontsize=12)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}", file=sys.stderr)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", help="gn_bench JSON output(s); later files override")
    ap.add_argument("--out", default="-")
    ap.add_argument("--png", default=None,
                    help="the chart (needs matplotlib); default: --out's name with .png, "
                         "none when --out is stdout; '' for none")
    ap.add_argument("--command", default="(not recorded)")
    args = ap.parse_args()
    if args.png is None:
        args.png = "" if args.out == "-" else os.path.splitext(args.out)[0] + ".png"

    rows, ctx = load(args.json)
    get = lambda fam, var, shape, t: rows.get((fam, var, shape, t), {})
    shapes = list(dict.fromkeys(k[2] for k in rows if k[0] == "gn"))
    order = ctx.get("suite", "").split(",")  # the suite's order; the JSON's may be shuffled
    shapes.sort(key=lambda s: order.index(s) if s in order else len(order))
    threads = sorted({k[3] for k in rows if k[0] == "gn"})
    l3 = l3_bytes(ctx)
    have_torch = any(k[0] == "torch" for k in rows)

    out = []
    w = out.append
    w("# gn_bench results\n")
    w(f"- Machine: {ctx.get('cpu_model', '?')}, {ctx.get('num_cpus', '?')} CPUs, "
      f"L3 {l3 >> 20} MiB, {ctx.get('mhz_per_cpu', '?')} MHz; load average at start "
      f"{', '.join(f'{x:.2f}' for x in ctx.get('load_avg', []))}"
      + (f"; the kernels' prefetch ahead {ctx['prefetch']}" if "prefetch" in ctx else ""))
    w(f"- PyTorch: {ctx.get('torch_version', 'not benchmarked')}"
      + (f" (ATen CPU capability {ctx['torch_cpu_capability']}; {ctx.get('torch_malloc', '')})"
         if "torch_cpu_capability" in ctx else ""))
    w(f"- Date: {ctx.get('date', '?')}; source: git {ctx.get('git', '?')}")
    w(f"- Command: `{args.command}`")
    w("- Numbers are medians over the repetitions; GB/s = (x read once + y written once) / time, "
      "1 GB = 1e9 bytes; roofline = a plain streaming copy of the same bytes (f32) in the same run; "
      "two-pass roofline = a streaming read of x, then the copy (NHWC reads a whole sample for "
      "its statistics before it normalizes any of it); f16 convert loop = read float16, "
      "convert, one FMA, convert, write (AVX-512 F16C), the float16 counterpart of the copy "
      "(f16 bound: its GB/s as % of the f32 copy's, what f16 % f32 can reach); "
      "speedup = torch time / our time.\n")
    chart = bool(args.png) and write_png(rows, ctx, shapes, args.png, l3)
    if chart:
        where = os.path.dirname(os.path.abspath(args.out)) if args.out != "-" else os.getcwd()
        w(f"![Forward GB/s per shape, f32 NCHW and NHWC: ours, PyTorch and the rooflines]({os.path.relpath(os.path.abspath(args.png), where)})\n")

    # Per-shape table, one per thread count.
    summary = defaultdict(list)  # (metric, threads) -> [(value, shape)]
    for t in threads:
        w(f"## {t} thread{'s' if t > 1 else ''}\n")
        w("| shape | MB x+y | ms | GB/s | roofline GB/s | % roofline | % 2-pass | torch ms | speedup "
          "| NHWC ms | torch CL ms | NHWC speedup | NHWC % 2-pass | f16 % f32 | f16 bound | bf16 % f32 |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in shapes:
            ours, nhwc = get("gn", "f32_nchw", s, t), get("gn", "f32_nhwc", s, t)
            roof, roof2 = get("roofline", "f32", s, t), get("roofline", "f32_two_pass", s, t)
            tn, tc = get("torch", "f32_nchw", s, t), get("torch", "f32_nhwc", s, t)
            f16, bf16 = get("gn", "f16_nchw", s, t), get("gn", "bf16_nchw", s, t)
            mb = max(p.get("gbs", 0) * p.get("ms", 0) for p in (ours, roof))  # GB/s * ms = MB
            pct = ratio(ours.get("gbs"), roof.get("gbs"))
            sp, sp_cl = ratio(tn.get("ms"), ours.get("ms")), ratio(tc.get("ms"), nhwc.get("ms"))
            h16, hb16 = ratio(f16.get("gbs"), ours.get("gbs")), ratio(bf16.get("gbs"), ours.get("gbs"))
            # The speedup a kernel running exactly at the copy roofline would have: no
            # GroupNorm moves fewer bytes than the copy (x read once, y written once).
            bound, bound_cl = ratio(tn.get("ms"), roof.get("ms")), ratio(tc.get("ms"), roof.get("ms"))
            # NHWC must read a whole sample for its statistics before it normalizes any of it
            # (each group spans the sample): x read, then copied, is its roofline.
            pct2_nhwc, bound2_cl = ratio(roof2.get("ms"), nhwc.get("ms")), ratio(tc.get("ms"), roof2.get("ms"))
            pct2 = ratio(roof2.get("ms"), ours.get("ms"))  # NCHW may beat it (groups in L2)
            # float16's ceiling: its one-pass convert loop against f32's copy, in GB/s.
            half_roof = ratio(get("roofline", "f16_convert", s, t).get("gbs"), roof.get("gbs"))
            for metric, v in (("nchw", sp), ("nhwc", sp_cl), ("f16", h16), ("bf16", hb16),
                              ("nchw_bound", bound), ("nhwc_bound", bound_cl),
                              ("nhwc_2pass", pct2_nhwc), ("nhwc_bound2", bound2_cl),
                              ("nchw_2pass", pct2), ("f16_bound", half_roof)):
                if v:
                    summary[metric, t].append((v, s))
            if pct and mb * 1e6 > l3:
                summary["roof", t].append((pct, s))
            pct_nhwc = ratio(nhwc.get("gbs"), roof.get("gbs"))
            if pct_nhwc and mb * 1e6 > l3:
                summary["roof_nhwc", t].append((pct_nhwc, s))
            errors = [f"{k}: {v['error']}" for k, v in
                      (("f32_nchw", ours), ("f32_nhwc", nhwc), ("f16", f16), ("bf16", bf16),
                       ("torch", tn), ("torch_cl", tc)) if "error" in v]
            w(f"| {s}{' (' + '; '.join(errors) + ')' if errors else ''} | {fmt(mb, '.1f')} "
              f"| {fmt(ours.get('ms'), '.4g')} | {fmt(ours.get('gbs'), '.1f')} "
              f"| {fmt(roof.get('gbs'), '.1f')} | {fmt(pct and 100 * pct, '.0f', '%')} "
              f"| {fmt(pct2 and 100 * pct2, '.0f', '%')} "
              f"| {fmt(tn.get('ms'), '.4g')} | {fmt(sp, '.2f', 'x')} | {fmt(nhwc.get('ms'), '.4g')} "
              f"| {fmt(tc.get('ms'), '.4g')} | {fmt(sp_cl, '.2f', 'x')} "
              f"| {fmt(pct2_nhwc and 100 * pct2_nhwc, '.0f', '%')} "
              f"| {fmt(h16 and 100 * h16, '.0f', '%')} | {fmt(half_roof and 100 * half_roof, '.0f', '%')} "
              f"| {fmt(hb16 and 100 * hb16, '.0f', '%')} |")
        w("")

    # Backward, one table per thread count.
    if any(k[0] == "bwd" for k in rows):
        for t in threads:
            w(f"## Backward, {t} thread{'s' if t > 1 else ''}\n")
            w("| shape | MB x+dy+dx | ms | 3-stream roofline ms | % roofline | torch ms | speedup "
              "| NHWC ms | two-pass bound ms | NHWC % of bound | torch CL ms | NHWC speedup |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for s in shapes:
                ours, nhwc = get("bwd", "f32_nchw", s, t), get("bwd", "f32_nhwc", s, t)
                roof = get("roofline", "f32_three_stream", s, t)
                roof2 = get("roofline", "f32_bwd_two_pass", s, t)
                tn, tc = get("torch_bwd", "f32_nchw", s, t), get("torch_bwd", "f32_nhwc", s, t)
                mb = roof.get("gbs", 0) * roof.get("ms", 0)
                pct = ratio(roof.get("ms"), ours.get("ms"))
                pct2 = ratio(roof2.get("ms"), nhwc.get("ms"))
                sp, sp_cl = ratio(tn.get("ms"), ours.get("ms")), ratio(tc.get("ms"), nhwc.get("ms"))
                for metric, v in (("bwd_nchw", sp), ("bwd_nhwc", sp_cl), ("bwd_nhwc_2pass", pct2),
                                  ("bwd_nchw_bound", ratio(tn.get("ms"), roof.get("ms"))),
                                  ("bwd_nhwc_bound", ratio(tc.get("ms"), roof2.get("ms")))):
                    if v:
                        summary[metric, t].append((v, s))
                if pct and mb * 1e6 > l3:
                    summary["bwd_roof", t].append((pct, s))
                w(f"| {s} | {fmt(mb, '.1f')} | {fmt(ours.get('ms'), '.4g')} | {fmt(roof.get('ms'), '.4g')} "
                  f"| {fmt(pct and 100 * pct, '.0f', '%')} | {fmt(tn.get('ms'), '.4g')} "
                  f"| {fmt(sp, '.2f', 'x')} | {fmt(nhwc.get('ms'), '.4g')} "
                  f"| {fmt(roof2.get('ms'), '.4g')} | {fmt(pct2 and 100 * pct2, '.0f', '%')} "
                  f"| {fmt(tc.get('ms'), '.4g')} | {fmt(sp_cl, '.2f', 'x')} |")
            w("")

    # Backward in bfloat16 and float16 (parameters in x's dtype) against PyTorch's in the same
    # dtype and layout.
    halves = [(dt, lay) for dt in ("bf16", "f16") for lay in ("nchw", "nhwc")
              if any(k[:2] == ("bwd", f"{dt}_{lay}") for k in rows)]
    if halves:
        for t in threads:
            w(f"## Backward, bfloat16 and float16, {t} thread{'s' if t > 1 else ''}\n")
            w("| shape | " + " | ".join(f"{dt} {lay.upper()} ms | torch ms | speedup"
                                       for dt, lay in halves) + " |")
            w("|---|" + "---:|---:|---:|" * len(halves))
            for s in shapes:
                cells = []
                for dt, lay in halves:
                    ours, tq = get("bwd", f"{dt}_{lay}", s, t), get("torch_bwd", f"{dt}_{lay}", s, t)
                    sp = ratio(tq.get("ms"), ours.get("ms"))
                    if sp:
                        summary[f"bwd_{dt}_{lay}", t].append((sp, s))
                    cells.append(f"{fmt(ours.get('ms'), '.4g')} | {fmt(tq.get('ms'), '.4g')} "
                                 f"| {fmt(sp, '.2f', 'x')}")
                w(f"| {s} | " + " | ".join(cells) + " |")
            w("")

    # Two threads over one, per shape: the pool's scaling (issue target 1.7x on shapes of
    # 1 MB and more); on shapes larger than L3 DRAM bounds it, and the copy roofline's own
    # two-thread scaling in the same run is that bound.
    if 1 in threads and 2 in threads:
        w("## Two threads over one\n")
        w("Time at 1 thread / time at 2 threads (f32). copy and 3-stream: the rooflines' own "
          "2T/1T, the bounds of forward and backward on shapes larger than L3 (DRAM).\n")
        w("| shape | MB x+y | NCHW | NHWC | copy | backward NCHW | backward NHWC | 3-stream |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        scale = lambda fam, var, s: ratio(get(fam, var, s, 1).get("ms"), get(fam, var, s, 2).get("ms"))
        for s in shapes:
            first = get("gn", "f32_nchw", s, 1)
            mb = first.get("gbs", 0) * first.get("ms", 0)
            copy, three = scale("roofline", "f32", s), scale("roofline", "f32_three_stream", s)
            cells = []
            for metric, fam, var, bound in (("scale_nchw", "gn", "f32_nchw", copy),
                                            ("scale_nhwc", "gn", "f32_nhwc", copy),
                                            ("copy", None, None, None),
                                            ("scale_bwd_nchw", "bwd", "f32_nchw", three),
                                            ("scale_bwd_nhwc", "bwd", "f32_nhwc", three)):
                if fam is None:
                    cells.append(fmt(copy, ".2f", "x"))
                    continue
                v = scale(fam, var, s)
                cells.append(fmt(v, ".2f", "x"))
                if not v or mb < 1.0:
                    continue
                if mb * 1e6 > l3:
                    if bound:
                        summary[metric + "_dram", 2].append((v / bound, s))
                else:
                    summary[metric, 2].append((v, s))
            w(f"| {s} | {fmt(mb, '.1f')} | " + " | ".join(cells) + f" | {fmt(three, '.2f', 'x')} |")
        w("")

    # Summary against the targets.
    w("## Summary\n")
    w(f"\"> L3\": shapes whose f32 x + y exceed the {l3 >> 20} MiB L3. "
      "min: the worst shape, named.\n")
    w("| metric | target | " + " | ".join(f"{t} thr" for t in threads) + " |")
    w("|---|---|" + "---|" * len(threads))

    def line(label, metric, target, reduce, pct=False, check_threads=None):
        cells = []
        for t in threads:
            vals = summary.get((metric, t), [])
            if not vals:
                cells.append("n/a")
                continue
            if reduce == "geomean":
                v, where = geomean([x for x, _ in vals]), ""
            else:
                v, where = min(vals)
                where = f" ({where})"
            ok = v >= target if check_threads is None or t in check_threads else None
            text = f"{100 * v:.0f}%" if pct else f"{v:.2f}x"
            cells.append(text + where + mark(ok))
        tgt = "" if check_threads == set() else f">= {100 * target:.0f}%" if pct else f">= {target}x"
        w(f"| {label} | {tgt} | " + " | ".join(cells) + " |")

    if have_torch:
        line("speedup vs torch, f32 NCHW, geomean", "nchw", T_NCHW_GEOMEAN, "geomean", check_threads={1})
        line("speedup vs torch, f32 NCHW, min", "nchw", T_NCHW_MIN, "min", check_threads={1})
        line("speedup vs torch channels_last, f32 NHWC, geomean", "nhwc", T_NHWC_GEOMEAN, "geomean")
        line("speedup vs torch channels_last, f32 NHWC, min", "nhwc", 0, "min", check_threads=set())
        line("bound: torch / roofline time, NCHW, geomean (a kernel at the roofline)",
             "nchw_bound", 0, "geomean", check_threads=set())
        line("bound: torch / roofline time, NCHW, min", "nchw_bound", 0, "min", check_threads=set())
        line("bound: torch CL / roofline time, NHWC, geomean", "nhwc_bound", 0, "geomean",
             check_threads=set())
        line("bound: torch CL / two-pass roofline time, NHWC, geomean", "nhwc_bound2", 0,
             "geomean", check_threads=set())
    if have_torch and any(k[0] == "bwd" for k in rows):
        line("backward: speedup vs torch, f32 NCHW, geomean", "bwd_nchw", T_BWD_NCHW_GEOMEAN, "geomean")
        line("backward: speedup vs torch, f32 NCHW, min", "bwd_nchw", T_BWD_NCHW_MIN, "min")
        line("backward: speedup vs torch channels_last, f32 NHWC, geomean", "bwd_nhwc",
             T_BWD_NHWC_GEOMEAN, "geomean")
        line("backward: speedup vs torch channels_last, f32 NHWC, min", "bwd_nhwc", T_BWD_NHWC_MIN, "min")
        line("bound: torch / 3-stream roofline time, backward NCHW, geomean", "bwd_nchw_bound", 0,
             "geomean", check_threads=set())
        line("bound: torch CL / two-pass bound time, backward NHWC, geomean", "bwd_nhwc_bound", 0,
             "geomean", check_threads=set())
        line("bound: torch CL / two-pass bound time, backward NHWC, min", "bwd_nhwc_bound", 0,
             "min", check_threads=set())

    if have_torch:
        for dt, lay in halves:
            target = T_BWD_NCHW_GEOMEAN if lay == "nchw" else T_BWD_NHWC_GEOMEAN
            floor = T_BWD_NCHW_MIN if lay == "nchw" else T_BWD_NHWC_MIN
            what = f"backward: speedup vs torch {dt}, {dt} {lay.upper()}"
            line(what + ", geomean", f"bwd_{dt}_{lay}", target, "geomean")
            line(what + ", min", f"bwd_{dt}_{lay}", floor, "min")
    line("backward: % of 3-stream roofline, f32 NCHW, shapes > L3, min", "bwd_roof", T_BWD_ROOF,
         "min", pct=True)
    line("backward: % of two-pass bound, f32 NHWC, geomean", "bwd_nhwc_2pass", 0, "geomean",
         pct=True, check_threads=set())
    line("backward: % of two-pass bound, f32 NHWC, min", "bwd_nhwc_2pass", 0, "min", pct=True,
         check_threads=set())
    line("% of two-pass roofline (x read, then copied), f32 NCHW, geomean", "nchw_2pass", 0,
         "geomean", pct=True, check_threads=set())
    line("% of two-pass roofline (x read, then copied), f32 NHWC, geomean", "nhwc_2pass", 0,
         "geomean", pct=True, check_threads=set())
    line("% of two-pass roofline, f32 NHWC, min", "nhwc_2pass", 0, "min", pct=True,
         check_threads=set())
    line("% of roofline, f32 NCHW, shapes > L3, min", "roof", T_ROOFLINE, "min", pct=True)
    line("% of roofline, f32 NCHW, shapes > L3, geomean", "roof", T_ROOFLINE, "geomean", pct=True)
    line("% of roofline, f32 NHWC, shapes > L3, min", "roof_nhwc", T_ROOFLINE, "min", pct=True)
    line("f16 GB/s as % of f32, geomean", "f16", T_HALF, "geomean", pct=True)
    line("f16 GB/s as % of f32, min", "f16", T_HALF, "min", pct=True)
    line("bound: f16 convert loop GB/s as % of f32 copy GB/s (one pass), geomean", "f16_bound", 0,
         "geomean", pct=True, check_threads=set())
    line("bound: f16 convert loop GB/s as % of f32 copy GB/s, min", "f16_bound", 0, "min",
         pct=True, check_threads=set())
    line("bf16 GB/s as % of f32, geomean", "bf16", T_HALF, "geomean", pct=True)
    line("bf16 GB/s as % of f32, min", "bf16", T_HALF, "min", pct=True)
    for metric, what in (("scale_nchw", "f32 NCHW"), ("scale_nhwc", "f32 NHWC"),
                         ("scale_bwd_nchw", "backward f32 NCHW"),
                         ("scale_bwd_nhwc", "backward f32 NHWC")):
        line(f"2 threads / 1 thread, {what}, shapes of 1 MB or more within L3, min", metric,
             T_SCALE, "min", check_threads={2})
        line(f"2 threads / 1 thread as % of the roofline's 2T/1T, {what}, shapes > L3, min",
             metric + "_dram", T_SCALE_BOUND, "min", pct=True, check_threads={2})

    fwd, direct = rows.get(("dispatch", "gn_forward", "", 0), {}), rows.get(("dispatch", "direct", "", 0), {})
    if "ms" in fwd and "ms" in direct:
        w(f"\nDispatch overhead (tiny shape, 1 thread): gn_forward {fwd['ms'] * 1e6:.0f} ns, direct "
          f"call of the generated function {direct['ms'] * 1e6:.0f} ns: "
          f"**{(fwd['ms'] - direct['ms']) * 1e6:.0f} ns** per call.")

    w("\n## Notes\n")
    w("- torch backward: `at::native_group_norm_backward` (what autograd calls) with the "
      "forward's mean and rstd, all three gradients, new outputs per call; ours: `gn_backward`, "
      "all three gradients; 3-stream roofline: a streaming dx = x + dy (x and dy read, dx "
      "written), the least traffic a backward pass needs; two-pass bound: per sample x and dy "
      "read, then read again with dx written, the traffic of a backward whose statistics need "
      "the whole sample first (channels-last).")
    w("- torch: `at::group_norm` under `c10::InferenceMode`, a new output per call. gn_bench keeps "
      "freed memory in glibc's heap, so the page faults of a fresh output over 32 MB are not "
      "timed as torch's; `GN_BENCH_MALLOC_DEFAULT=1` times them (what a plain PyTorch user pays).")
    w("- threads:N: `gn_set_num_threads(N)` (N = 1: loops in order on the calling thread; 2: the "
      "library's own pool, the caller and one worker); torch: `at::set_num_threads(N)`; "
      "roofline: OpenMP, at most one thread per 256 KiB copied.")
    if chart:
        w("- Chart: GB/s per shape, smallest first, as the table counts them; \"default "
          "schedule\": gn/f32_nchw_default and gn/f32_nhwc_default, the f32 variant of the layout "
          "without tuning overrides, called directly on the shapes where dispatch picks a tuned one "
          "(generators/tuning/).")
    w("- Repetitions are randomly interleaved across the suite: this VM's DRAM bandwidth drifts "
      "by about 20% over seconds, and ratios of medians taken minutes apart would carry it.")

    # Benchmarks that used more cores than their thread count: their numbers are not what
    # the name says (e.g. a thread pool that ignores the requested count).
    over = [f"{'/'.join(k[:3])}/threads:{k[3]} ({p['cores']:.2f} cores)"
            for k, p in rows.items() if k[3] and p.get("cores", 0) > k[3] + 0.25]
    w("\n## Checks\n")
    w("Benchmarks using more cores than their thread count (process CPU / real time): "
      + (", ".join(sorted(over)) if over else "none."))

    text = "\n".join(out) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
