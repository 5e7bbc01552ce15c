// The variant registry: every AOT-compiled function, one row each, generated from the
// variant table (generators/variants.txt). Like an implementation list: for a problem, each
// variant accepts it or says why not; the first that accepts serves it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "canonicalise.h"
#include "tuning.h"

namespace groupnorm::detail {

// Shape-class bounds from the table; -1 = unbounded.
struct ShapeBounds {
    int64_t min_ng = -1, max_ng = -1;        // N * G
    int64_t min_group = -1, max_group = -1;    // D * S, values per group
    int64_t min_values = -1, max_values = -1;  // N * C * S, values of x

    bool bounded() const { return min_ng >= 0 || max_ng >= 0 || min_group >= 0 || max_group >= 0 ||
                              min_values >= 0 || max_values >= 0; }
};

struct Variant {
    const char *name;
    gn_op op;
    gn_device device;
    gn_dtype dtype;
    gn_layout layout;
    gn_dtype param_dtype;
    const char *family;       // target family: "x86", "arm", "cuda", "opencl"
    groupnorm_gen::Family schedule_family;
    const char *shape_class;  // "any"; GPU: "group" or "split"
    ShapeBounds bounds;
    const char *tuning;       // overrides it was built with ("" = the family's defaults)
    void (*fn)();             // the AOT function; its signature follows op and device (dispatch.h)

    bool is_gpu() const { return device != GN_DEVICE_CPU; }
    // Its schedule parameters as built (defaults + the table's overrides).
    const groupnorm_gen::Tuning &tuning_record() const;
};

// Every compiled variant, in lookup order.
const Variant *all_variants(size_t *count);

// Hard limits of the variant's schedule (grid sizes, shared memory): whether it can run
// the problem at all, whatever its shape class. Tests run each variant on every problem it
// can run. On false, *why (when given) says which limit.
bool can_run(const Variant &v, const Problem &p, std::string *why = nullptr);

// Whether v serves p: op, device, dtypes, layout, shape-class bounds and can_run.
bool accepts(const Variant &v, const Problem &p, std::string *why = nullptr);

// The first variant that accepts the problem, or nullptr (status and error message set).
const Variant *find_variant(const Problem &problem, gn_status *status = nullptr);

}  // namespace groupnorm::detail
