"""Tune.smoke: groupnorm-tune on two small shapes with the first three candidates of the
nchw space, then --resume (nothing left to measure), and the table's form: every candidate
gated and measured or rejected with a reason, one class row per class present, the classes'
bounds as the variant table writes them, the evidence per shape.

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
            "--reps", "3", "--out", out]
    subprocess.run(args, check=True)
    first = json.load(open(out))
    subprocess.run(args + ["--resume"], check=True)
    table = json.load(open(out))
    assert table["measurements"] == first["measurements"], "--resume measured again"

    assert table["format"] == 1 and table["family"] == "x86" and table["threads"] == 1
    tunings = {m["tuning"] for m in table["measurements"]} | {r["tuning"] for r in table["rejected"]}
    assert len(tunings) == 3 and "-" in tunings, tunings  # the defaults come first
    for m in table["measurements"]:
        assert m["median_ns"] > 0 and m["copy_ns"] > 0, m
    measured = {m["tuning"] for m in table["measurements"]}
    assert len(table["measurements"]) == 2 * len(measured)
    # (2, 8, 16, 16) G=4: 512 values a group (small); (1, 4, 4096) G=1: 16384 (small too).
    classes = table["classes"]
    assert [c["class"] for c in classes] == ["small"], classes
    small = classes[0]
    assert small["bounds"] == "max_group=16384" and small["layout"] == "nchw"
    assert small["tuning"] == "-" or small["tuning"] in measured
    assert small["geomean_vs_default"] <= 1.0
    assert {r["shape"] for r in small["shapes"]} == {"a", "(1, 4, 4096)_g1"}, small["shapes"]
    print("ok: %d measured, %d rejected; small class: %s" % (
        len(measured), len(table["rejected"]), small["tuning"]))


if __name__ == "__main__":
    main()
