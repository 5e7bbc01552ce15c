// The tuner's search space: per layout, the schedule fields (generators/tuning.h) it sweeps
// and their candidate values. Candidates are the cartesian product, minus combinations the
// generator refuses (check_tuning), with the family's defaults always first.
//
// Schedule constants, and one structural choice: a block's moments in one read or two
// (stat_passes). Not yet in the space: a group split across threads when N*G < threads
// (README "Tuning"). Halide's autoschedulers are contenders beside this space, per shape
// (tune.cpp).
#pragma once

#include <string>
#include <vector>

#include "tuning.h"

namespace groupnorm::tune {

struct Axis {
    const char *field;
    std::vector<int> values;
};

// "quick": a few values per field (minutes); "full": the wider sweep (tens of minutes).
inline std::vector<Axis> search_axes(groupnorm_gen::Layout layout, bool full) {
    using groupnorm_gen::Layout;
    if (layout == Layout::NCHW) {
        if (!full) {
            return {{"stat_passes", {1, 2}}, {"y_vectors", {1, 2, 4}}, {"acc_vectors", {2, 4}},
                    {"lane_steps", {16, 64, 256}}};
        }
        return {{"stat_passes", {1, 2}},
                {"y_vectors", {1, 2, 4}},
                {"acc_vectors", {1, 2, 4, 8}},
                {"lane_steps", {8, 16, 64, 256, 1024}},
                {"blocks_per_partial", {8, 32}}};
    }
    if (!full) {
        return {{"stat_passes", {1, 2}}, {"y_vectors", {1, 2}}, {"block_rows", {128, 512, 2048}},
                {"rows_per_task", {8, 32, 128}}};
    }
    return {{"stat_passes", {1, 2}},
            {"y_vectors", {1, 2, 4}},
            {"stat_vectors", {1, 2}},
            {"block_rows", {64, 128, 512, 2048}},
            {"rows_per_step", {2, 4, 8}},
            {"rows_per_task", {8, 32, 128}}};
}

// The defaults compiled a second time and timed as a candidate: an A/A comparison whose
// distance from 1 is the noise of the run (the tuner keeps a candidate only beyond it).
inline const char *const kControlSpec = "control";

inline bool same_tuning(const groupnorm_gen::Tuning &a, const groupnorm_gen::Tuning &b) {
    for (const groupnorm_gen::TuningField &f : groupnorm_gen::kTuningFields) {
        if (a.*f.member != b.*f.member) return false;
    }
    return true;
}

// Tuning specs ("field=value,..."; "" = the defaults), the defaults and the control first,
// then every checked combination that differs from the defaults.
inline std::vector<std::string> candidate_specs(groupnorm_gen::Family family,
                                                groupnorm_gen::Layout layout, bool full) {
    const std::vector<Axis> axes = search_axes(layout, full);
    std::vector<std::string> specs = {"", kControlSpec};
    groupnorm_gen::Tuning defaults;
    groupnorm_gen::resolve_tuning_spec(family, layout, groupnorm_gen::GpuShape::Group, "", &defaults);
    std::vector<size_t> at(axes.size(), 0);
    for (;;) {
        std::string spec;
        for (size_t i = 0; i < axes.size(); i++) {
            spec += (i ? "," : "") + std::string(axes[i].field) + "=" +
                    std::to_string(axes[i].values[at[i]]);
        }
        groupnorm_gen::Tuning t;
        if (groupnorm_gen::resolve_tuning_spec(family, layout, groupnorm_gen::GpuShape::Group,
                                               spec.c_str(), &t)
                .empty() &&
            !same_tuning(t, defaults)) {
            specs.push_back(spec);
        }
        size_t i = 0;
        while (i < axes.size() && ++at[i] == axes[i].values.size()) at[i++] = 0;
        if (i == axes.size()) break;
    }
    return specs;
}

}  // namespace groupnorm::tune
