"""Tune.smoke: groupnorm-tune on two small shapes with the first three candidates of the
nchw space and Halide's three CPU autoschedulers, then --resume (nothing left to measure;
refused for a partial of other threads), and the table's form: every candidate gated and
measured or rejected with a reason, every autoscheduler measured or rejected with a reason
on every shape (never chosen), one class row per class present (by group size, and by x and
y fitting --cache-bytes), the classes' bounds as the variant table writes them, the evidence
per shape, the per-shape report; then --candidates.

    tune_test.py <groupnorm-tune> <work dir>
"""

import json
import os
import subprocess
import sys


def main():
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    shapes = os.path.join(work, "shapes.json")
    out = os.path.join(work, "table.json")
    with open(shapes, "w") as f:
        json.dump([{"name": "a", "shape": [2, 8, 16, 16], "groups": 4},
                   {"shape": [1, 4, 4096], "groups": 1}], f)
    args = [tool, "--shapes", shapes, "--layouts", "nchw", "--max-candidates", "3",
            "--reps", "3", "--cache-bytes", "65536", "--out", out]
    report = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
    first = json.load(open(out))
    subprocess.run(args + ["--resume"], check=True)
    table = json.load(open(out))
    assert table["measurements"] == first["measurements"], "--resume measured again"
    # A partial measured with other threads (or another JIT target or dtype) is refused.
    refused = subprocess.run(args + ["--resume", "--threads", "2"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    assert refused.returncode != 0 and "threads=1" in refused.stderr \
        and "threads=2" in refused.stderr, refused.stderr
    assert json.load(open(out)) == table, "a refused --resume rewrote the table"

    assert table["format"] == 1 and table["family"] == "x86" and table["threads"] == 1
    autos = ["auto:Adams2019", "auto:Mullapudi2016", "auto:Li2018"]
    candidates = [m for m in table["measurements"] if not m["tuning"].startswith("auto:")]
    rejected = [r for r in table["rejected"] if not r["tuning"].startswith("auto:")]
    tunings = {m["tuning"] for m in candidates} | {r["tuning"] for r in rejected}
    assert len(tunings) == 3 and "-" in tunings, tunings  # the defaults come first
    for m in table["measurements"]:
        assert m["median_ns"] > 0 and m["copy_ns"] > 0, m
    measured = {m["tuning"] for m in candidates}
    assert len(candidates) == 2 * len(measured)
    # Each autoscheduler on each shape: timed (after passing the gate) or rejected with why.
    for auto in autos:
        for shape in ["a", "(1, 4, 4096)_g1"]:
            timed = [m for m in table["measurements"] if m["tuning"] == auto and m["shape"] == shape]
            why = [r["reason"] for r in table["rejected"] if r["tuning"] == auto and r.get("shape") == shape]
            assert len(timed) + len(why) == 1 and all(why), (auto, shape, timed, why)
    assert "| nchw | a | small_in_cache |" in report and "Li2018 us (x tuned)" in report, report
    # (2, 8, 16, 16) G=4: 512 values a group (small), 4096 values, whose x and y (32 KiB) fit
    # 64 KiB; (1, 4, 4096) G=1: 16384 values a group (small too), 16384 values (128 KiB).
    assert "--cache-bytes 65536" in table["made_by"], table["made_by"]
    classes = table["classes"]
    assert [c["class"] for c in classes] == ["small_in_cache", "small"], classes
    bounds = ["max_group=16384,max_values=8192", "max_group=16384,min_values=8193"]
    for cls, bound, shape in zip(classes, bounds, ["a", "(1, 4, 4096)_g1"]):
        assert cls["bounds"] == bound and cls["layout"] == "nchw", cls
        assert cls["tuning"] == "-" or cls["tuning"] in measured  # never an autoscheduler
        for row in cls["shapes"]:
            assert set(row["autoscheduled_ns"]) == {a[5:] for a in autos}, row
        assert cls["geomean_vs_default"] <= 1.0
        assert [r["shape"] for r in cls["shapes"]] == [shape], cls["shapes"]
    small = classes[0]

    # --candidates: these specs after the defaults and the control, one equal to the
    # defaults left out (nchw lane_steps is 64 by default), and the command in the table.
    listed = os.path.join(work, "listed.json")
    subprocess.run([tool, "--shapes", shapes, "--layouts", "nchw", "--autoschedulers", "none",
                    "--candidates", "lane_steps=16;lane_steps=64", "--reps", "3", "--out", listed],
                   check=True, stdout=subprocess.DEVNULL)
    listed_table = json.load(open(listed))
    assert {m["tuning"] for m in listed_table["measurements"]} == {"-", "control", "lane_steps=16"}, \
        listed_table["measurements"]
    assert "--candidates 'lane_steps=16;lane_steps=64'" in listed_table["made_by"], listed_table["made_by"]
    print("ok: %d measured, %d rejected; small class: %s" % (
        len(measured), len(table["rejected"]), small["tuning"]))


if __name__ == "__main__":
    main()
