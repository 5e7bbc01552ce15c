"""Python call overhead of groupnorm.group_norm on a tiny tensor, over the C call itself
(gn_forward on the same tensors, timed in a C++ loop inside the extension).

    PYTHONPATH=build/python .venv/bin/python bench/python_overhead.py
"""

import sys
import timeit

import numpy as np

import groupnorm
from groupnorm import _ext

SHAPE, GROUPS = (1, 8, 2, 2), 4
REPEATS = 20000


def best_ns(fn, repeats=REPEATS, rounds=7):
    """Best of `rounds` means of `repeats` calls, in nanoseconds per call."""
    return min(timeit.repeat(fn, number=repeats, repeat=rounds)) / repeats * 1e9


def main():
    groupnorm.set_num_threads(1)  # tiny tensors: no thread pool in the way
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    y = np.empty_like(x)
    c_ns = min(_ext.time_c_forward(x, y, GROUPS, REPEATS) for _ in range(7))
    rows = [("C: gn_forward (C++ loop)", c_ns)]
    rows.append(("numpy: group_norm(x, G, out=y)", best_ns(lambda: groupnorm.group_norm(x, GROUPS, out=y))))
    rows.append(("numpy: group_norm(x, G)", best_ns(lambda: groupnorm.group_norm(x, GROUPS))))
    rows.append(("numpy: _ext.forward (binding only)",
                 best_ns(lambda: _ext.forward(x, None, None, GROUPS, 1e-5, y, None, None))))
    try:
        import torch
        import groupnorm.torch as gt
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)
        t = torch.from_numpy(x)
        ty = torch.empty_like(t)
        rows.append(("torch: group_norm(t, G, out=ty)",
                     best_ns(lambda: groupnorm.group_norm(t, GROUPS, out=ty), 5000)))
        with torch.no_grad():
            rows.append(("torch: groupnorm.torch.group_norm (inference)",
                         best_ns(lambda: gt.group_norm(t, GROUPS), 5000)))
            rows.append(("torch: F.group_norm (stock, for scale)",
                         best_ns(lambda: torch.nn.functional.group_norm(t, GROUPS), 5000)))
        # Training: forward with statistics and autograd, then backward (all three grads).
        tr = t.clone().requires_grad_()
        w = torch.ones(SHAPE[1], requires_grad=True)
        b = torch.zeros(SHAPE[1], requires_grad=True)
        dy = torch.ones_like(t)
        rows.append(("torch: forward + backward, ours (autograd)",
                     best_ns(lambda: torch.autograd.grad(gt.group_norm(tr, GROUPS, w, b),
                                                         (tr, w, b), dy), 2000)))
        rows.append(("torch: forward + backward, stock (for scale)",
                     best_ns(lambda: torch.autograd.grad(
                         torch.nn.functional.group_norm(tr, GROUPS, w, b), (tr, w, b), dy),
                         2000)))
    print("x %s float32, %d groups, 1 thread; best of 7 means\n" % (SHAPE, GROUPS))
    print("| call | us per call | over the C call |")
    print("|---|---:|---:|")
    for name, ns in rows:
        over = "" if ns is c_ns or "backward" in name else "+%.2f us" % ((ns - c_ns) / 1e3)
        print("| %s | %.2f | %s |" % (name, ns / 1e3, over))
    print("\npython %s, numpy %s%s" % (sys.version.split()[0], np.__version__,
                                       ", torch " + torch.__version__ if torch else ""))


if __name__ == "__main__":
    main()
