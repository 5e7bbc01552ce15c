"""Python call overhead of groupnorm.group_norm on a tiny tensor, over the C call itself
(gn_forward on the same tensors, timed in a C++ loop inside the extension).

    PYTHONPATH=build/python .venv/bin/python bench/python_overhead.py

Every call is timed in short batches, the calls interleaved batch by batch, and the best
batch counts: on a shared machine the least disturbed one (a batch of a few ms is rarely
preempted; long ones nearly always are under load).
"""

import os
import sys
import time

import numpy as np

import groupnorm
from groupnorm import _ext

SHAPE, GROUPS = (1, 8, 2, 2), 4
ROUNDS = 60


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main():
    groupnorm.set_num_threads(1)  # tiny tensors: no thread pool in the way
    load_start = os.getloadavg()[0]
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    y = np.empty_like(x)
    # (name, function, calls per batch); None: the C loop
    calls = [("C: gn_forward (C++ loop)", None, 1000),
             ("numpy: group_norm(x, G, out=y)", lambda: groupnorm.group_norm(x, GROUPS, out=y), 1000),
             ("numpy: group_norm(x, G)", lambda: groupnorm.group_norm(x, GROUPS), 1000),
             ("numpy: _ext.forward (binding only)",
              lambda: _ext.forward(x, None, None, GROUPS, 1e-5, y, None, None), 1000)]
    try:
        import torch
        import groupnorm.torch as gt
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)
        t = torch.from_numpy(x)
        ty = torch.empty_like(t)

        # Training: forward with statistics and autograd, then backward (all three grads).
        tr = t.clone().requires_grad_()
        w = torch.ones(SHAPE[1], requires_grad=True)
        b = torch.zeros(SHAPE[1], requires_grad=True)
        dy = torch.ones_like(t)
        F = torch.nn.functional
        calls += [
            ("torch: group_norm(t, G, out=ty)", lambda: groupnorm.group_norm(t, GROUPS, out=ty), 500),
            ("torch: groupnorm.torch.group_norm (inference)", lambda: gt.group_norm(t, GROUPS), 500),
            ("torch: F.group_norm (stock, for scale)", lambda: F.group_norm(t, GROUPS), 500),
            ("torch: forward + backward, ours (autograd)",
             lambda: torch.autograd.grad(gt.group_norm(tr, GROUPS, w, b), (tr, w, b), dy), 50),
            ("torch: forward + backward, stock (for scale)",
             lambda: torch.autograd.grad(F.group_norm(tr, GROUPS, w, b), (tr, w, b), dy), 50),
        ]
    best = {name: float("inf") for name, _, _ in calls}
    for _ in range(ROUNDS):
        for name, fn, k in calls:
            # Inference calls under no_grad, as in a model's forward (entered per batch).
            with torch.no_grad() if torch and "backward" not in name else _Nothing():
                if fn is None:
                    ns = _ext.time_c_forward(x, y, GROUPS, k)
                else:
                    start = time.perf_counter_ns()
                    for _ in range(k):
                        fn()
                    ns = (time.perf_counter_ns() - start) / k
            best[name] = min(best[name], ns)
    c_ns = best[calls[0][0]]
    print("x %s float32, %d groups, 1 thread; best of %d interleaved batches; load average "
          "%.1f at the start, %.1f at the end\n" % (SHAPE, GROUPS, ROUNDS, load_start,
                                                      os.getloadavg()[0]))
    print("| call | us per call | over the C call |")
    print("|---|---:|---:|")
    for name, _, _ in calls:
        ns = best[name]
        over = "" if name == calls[0][0] or "backward" in name else "+%.2f us" % ((ns - c_ns) / 1e3)
        print("| %s | %.2f | %s |" % (name, ns / 1e3, over))
    print("\npython %s, numpy %s%s" % (sys.version.split()[0], np.__version__,
                                       ", torch " + torch.__version__ if torch else ""))


if __name__ == "__main__":
    main()
