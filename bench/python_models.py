"""Client models, stock PyTorch against ours: a torchvision ResNet-50 with GroupNorm(32, c)
layers (random weights) and a diffusers-style UNet block stack (ResnetBlock2D: GroupNorm +
SiLU + conv, python/tests/models.py), forward (inference, no_grad) and a training step
(forward, backward, SGD step), at 1 and 2 threads. Also: the outputs' and gradients'
largest differences between the two, and the time in GroupNorm layers of each
(GroupNormTimer).
Writes a markdown table (and a PNG with matplotlib).

    PYTHONPATH=build/python .venv/bin/python bench/python_models.py [--out bench/MODELS.md]
"""

import argparse
import copy
import os
import sys
import time

import torch
from torch import nn

import groupnorm
import groupnorm.torch as gt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python",
                                "tests"))
from models import unet_blocks  # noqa: E402

class GroupNormTimer:
    """Seconds a model spends in its GroupNorm layers: each GroupNorm module's forward call
    (forward hooks) and, in a training step, the autograd node it made (node pre- and
    post-hooks), timed with the bench's CLOCK: what a step spends there, Python included. Not
    torch.profiler: its aten::native_group_norm event leaves out stock's F.group_norm and
    dispatch around it, while ours (Python calling the extension) runs under
    record_function with every torch call inside it recorded, at a cost of its own."""

    def __init__(self, model):
        self.seconds = 0.0
        self._handles = []
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                self._handles.append(m.register_forward_pre_hook(self._forward_start))
                self._handles.append(m.register_forward_hook(self._forward_end))

    def _forward_start(self, module, args):
        self._start = CLOCK()

    def _forward_end(self, module, args, output):
        self.seconds += CLOCK() - self._start
        if output.grad_fn is not None:
            output.grad_fn.register_prehook(self._backward_start)
            output.grad_fn.register_hook(self._backward_end)

    def _backward_start(self, grad_outputs):
        self._start = CLOCK()

    def _backward_end(self, grad_inputs, grad_outputs):
        self.seconds += CLOCK() - self._start

    def remove(self):
        for h in self._handles:
            h.remove()


def configs(quick):
    import torchvision

    resnet = lambda: torchvision.models.resnet50(norm_layer=lambda c: nn.GroupNorm(32, c))
    unet = lambda: unet_blocks(128, (128, 256))
    batch = 1 if quick else 2
    return [
        ("resnet50_gn %dx3x224x224" % batch, resnet, (batch, 3, 224, 224), False),
        ("unet_blocks %dx128x64x64" % batch, unet, (batch, 128, 64, 64), False),
        ("unet_blocks %dx128x64x64 CL" % batch, unet, (batch, 128, 64, 64), True),
    ]


def prepare(build, shape, channels_last):
    torch.manual_seed(0)
    stock = build().train()
    ours = gt.replace_group_norms(copy.deepcopy(stock))
    x = torch.randn(shape)
    if channels_last:
        stock = stock.to(memory_format=torch.channels_last)
        ours = ours.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return {"stock": stock, "ours": ours}, x


def forward(model, x):
    with torch.no_grad():
        return model(x)


def train_step(model, x, optimizer):
    optimizer.zero_grad(set_to_none=True)
    loss = model(x).square().mean()
    loss.backward()
    optimizer.step()
    return loss


def timed(fn, reps):
    """Seconds per call of each model, the best of interleaved repetitions (on a shared
    machine the least disturbed run; medians follow other processes' load)."""
    for name in ("stock", "ours", "stock", "ours"):
        fn(name)  # warm-up
    times = {"stock": [], "ours": []}
    for _ in range(reps):
        for name in ("stock", "ours"):
            start = CLOCK()
            fn(name)
            times[name].append(CLOCK() - start)
    return {k: min(v) for k, v in times.items()}


def gn_times(fn, models, reps):
    """Seconds in GroupNorm layers per call of each model (GroupNormTimer) and the share
    of stock's call they take: the best of interleaved repetitions."""
    gn = {"stock": [], "ours": []}
    share = []
    for _ in range(reps):
        for name in ("stock", "ours"):
            timer = GroupNormTimer(models[name])
            start = CLOCK()
            fn(name)
            total = CLOCK() - start
            timer.remove()
            gn[name].append(timer.seconds)
            if name == "stock":
                share.append(timer.seconds / total)
    return {k: min(v) for k, v in gn.items()}, max(share)


def differences(models, x):
    """Largest |ours - stock| of the output and of every gradient, relative to the largest
    stock value (same weights, same input)."""
    out = {}
    for name, model in models.items():
        m = copy.deepcopy(model)
        xi = x.clone().requires_grad_()
        y = m(xi)
        grads = torch.autograd.grad(y.square().mean(), [xi] + list(m.parameters()))
        out[name] = (y.detach(), grads)
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
    y_diff = rel(out["ours"][0], out["stock"][0])
    g_diff = max(rel(a, b) for a, b in zip(out["ours"][1], out["stock"][1]))
    return y_diff, g_diff


LOAD_AT_START = os.getloadavg()[0]
# Wall time by default; --clock cpu: the process's CPU time, which waiting for a core on a
# loaded machine does not inflate (at 1 thread all the work is on the calling thread; at 2
# it would count OpenMP's spin-waiting, so it is refused there).
CLOCK = time.perf_counter


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/MODELS.md")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--quick", action="store_true", help="batch 1, 2 repetitions")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time (1 thread only)")
    parser.add_argument("--append", action="store_true",
                        help="add this run's table to --out (no PNG) instead of replacing it")
    args = parser.parse_args()
    if args.clock == "cpu":
        if args.threads != "1":
            parser.error("--clock cpu needs --threads 1")
        global CLOCK
        CLOCK = time.process_time
    reps = 2 if args.quick else args.reps
    rows = []
    for label, build, shape, channels_last in configs(args.quick):
        models, x = prepare(build, shape, channels_last)
        y_diff, g_diff = differences(models, x)
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            groupnorm.set_num_threads(threads)
            optimizers = {k: torch.optim.SGD(m.parameters(), lr=1e-4) for k, m in models.items()}
            for mode in ("forward", "train step"):
                if mode == "forward":
                    call = lambda name: forward(models[name], x)
                else:
                    call = lambda name: train_step(models[name], x, optimizers[name])
                t = timed(call, reps)
                gn, share = gn_times(call, models, reps)
                rows.append(dict(model=label, mode=mode, threads=threads, stock=t["stock"],
                                 ours=t["ours"], gn_stock=gn["stock"], gn_ours=gn["ours"],
                                 gn_frac=share, y_diff=y_diff, g_diff=g_diff))
                r = rows[-1]
                print("%-30s %-10s %d thr: stock %8.1f ms, ours %8.1f ms (%.2fx); GroupNorm "
                      "%.1f -> %.1f ms (%.2fx, %.0f%% of stock)" % (
                          label, mode, threads, r["stock"] * 1e3, r["ours"] * 1e3,
                          r["stock"] / r["ours"], r["gn_stock"] * 1e3, r["gn_ours"] * 1e3,
                          r["gn_stock"] / r["gn_ours"], 100 * r["gn_frac"]), flush=True)
    write_table(rows, args, reps)
    if not args.append:
        write_png(rows, os.path.splitext(args.out)[0] + ".png")


def write_table(rows, args, reps):
    lines = [] if args.append else ["# Client models: stock PyTorch vs groupnorm.torch", ""]
    lines += [
        "`%s` (PyTorch %s, %s, %d cores, 1-minute load average %.1f at the start and %.1f "
        "at the end; %s; best of %d interleaved repetitions; GroupNorm time: the GroupNorm "
        "modules' forward calls and their autograd nodes' backward, timed around each with "
        "hooks, summed per step, best of %d further repetitions). Speed-up > 1: ours faster. "
        "Differences: largest |ours - stock| over the largest |stock|, of the output and of "
        "any gradient (ResNet-50's ReLUs make a few gradient elements differ by O(1) between "
        "any two float32 implementations: an input within rounding of 0 takes the other "
        "branch)." % (" ".join(["bench/python_models.py"] + sys.argv[1:]), torch.__version__,
                      _cpu_name(), os.cpu_count(), LOAD_AT_START, os.getloadavg()[0],
                      "process CPU time" if args.clock == "cpu" else "wall time", reps, reps),
        "",
        "| model | step | threads | stock ms | ours ms | speed-up | GroupNorm stock ms | "
        "GroupNorm ours ms | GroupNorm speed-up | GroupNorm share (stock) | max rel. diff y / grads |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append("| %s | %s | %d | %.1f | %.1f | %.2fx | %.2f | %.2f | %.2fx | %.0f%% | "
                     "%.1e / %.1e |" % (
                         r["model"], r["mode"], r["threads"], r["stock"] * 1e3,
                         r["ours"] * 1e3, r["stock"] / r["ours"], r["gn_stock"] * 1e3,
                         r["gn_ours"] * 1e3, r["gn_stock"] / r["gn_ours"],
                         100 * r["gn_frac"], r["y_diff"], r["g_diff"]))
    with open(args.out, "a" if args.append else "w") as f:
        f.write(("\n" if args.append else "") + "\n".join(lines) + "\n")
    print("\n".join(lines))


def write_png(rows, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib: table only)")
        return
    labels = ["%s\n%s, %d thr" % (r["model"], r["mode"], r["threads"]) for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    ys = range(len(rows))
    ax.barh([y - 0.2 for y in ys], [r["stock"] / r["ours"] for r in rows], 0.4,
            label="whole step")
    ax.barh([y + 0.2 for y in ys], [r["gn_stock"] / r["gn_ours"] for r in rows], 0.4,
            label="GroupNorm calls")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up of groupnorm.torch over stock PyTorch (> 1: faster)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("wrote", path)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


if __name__ == "__main__":
    main()
