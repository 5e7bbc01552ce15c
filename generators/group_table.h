// The group of each channel, c / D, as a table made once per call (the backward's CPU
// schedules).
//
// Per-channel tables built a vector of channels at a time paid an integer division per lane
// (channels-last), and every channel of nchw paid one per pass on its critical path: the
// table made the backward's small maps 1.06-1.14x faster (nhwc) and up to 1.04x (nchw). It
// is a scatter over (d, g): no division at all. (The forward's channels-last tables through
// it: 1.05x on many-channel small maps but 0.85-0.92x on large ones; not used there. The
// forward finds the group by a float division instead: group_of in group_norm_generator.cpp.)
#pragma once

#include <string>

#include "Halide.h"

namespace groupnorm_gen {

struct GroupTable {
    Halide::Func table;
    Halide::Expr groups;
    Halide::Var c{"c"};
    Halide::RDom r;  // (d, g)

    GroupTable(const std::string &name, Halide::Expr D, Halide::Expr g_count)
        : table(name), groups(g_count), r(0, D, 0, g_count, name + "_r") {
        table(c) = 0;
        table(r.y * D + r.x) = r.y;
    }
    // c's group. Bounds inference cannot see a table's values: promised in [0, groups), which
    // also makes a Func read through it bounded to every group (use it where that is the
    // region computed anyway, or for inputs).
    Halide::Expr operator()(Halide::Expr channel) const {
        return Halide::unsafe_promise_clamped(table(channel), 0, groups - 1);
    }
    // At root: the zeros a vector at a time, each group's row of indices a vector at a time
    // (distinct channels: no race between lanes).
    void schedule(int vec) {
        using namespace Halide;
        table.compute_root().vectorize(c, vec, TailStrategy::GuardWithIf);
        table.update().allow_race_conditions().vectorize(r.x, vec, TailStrategy::GuardWithIf);
    }
};

}  // namespace groupnorm_gen
