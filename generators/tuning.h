// Schedule parameters ("tuning"): the one list of them, their meaning and range, and the
// one place that sets each target family's defaults.
//
// Every field is a GeneratorParam of the generator (same name; 0 there means "the family's
// default"), so the variant table (generators/variants.cmake) and a tuner can set any of
// them per variant. This header does not include Halide: the runtime's registry includes it
// too, and derives the thresholds that follow from a schedule (GPU shared-memory limits) from
// the same resolved values the generator used.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>

namespace groupnorm_gen {

// Memory layout of the canonical 3-D view (s, c, n).
//   nchw: s is dense (stride 1); a group is D consecutive rows of S elements.
//   nhwc: c is dense (stride 1); every spatial position holds all C channels.
enum class Layout { NCHW, NHWC };

// Which schedule family a target uses.
enum class Family { X86, Arm, Gpu };

// GPU shape classes (schedules/gpu.h): split the spatial reduction over many blocks (few
// (n, g) pairs), or one block per (n, g).
enum class GpuShape { Split, Group };

// X(name, min, max, meaning). "Vectors" are the target's natural vectors of the compute
// type (float32: 16 lanes on AVX-512, 8 on AVX2, 4 on SSE4.1 and NEON; float64 for f64
// rows: half as many), so one record serves every ISA level of a multi-target library.
#define GN_TUNING_FIELDS(X)                                                                     \
    X(y_vectors, 1, 8, "CPU: y values written per loop iteration, in vectors")                  \
    X(acc_vectors, 1, 8, "CPU nchw: vectors of independent accumulators per block sum")         \
    X(lane_steps, 1, 4096, "CPU nchw: values each accumulator lane sums per block")             \
    X(stat_vectors, 1, 8, "CPU nhwc: channels per accumulator vector of a block sum, in vectors") \
    X(block_rows, 1, 1 << 20, "CPU nhwc: spatial rows per block (the unit of centred moments)") \
    X(rows_per_step, 1, 8, "CPU nhwc: rows added per load/store of the second moment's sums")  \
    X(rows_per_chain, 1, 1 << 20,                                                               \
      "CPU nhwc: rows one accumulator sums before chains are added (multiple of rows_per_step)") \
    X(rows_per_task, 1, 1 << 20, "CPU nhwc: spatial rows per parallel task of normalize")       \
    X(stat_passes, 1, 2,                                                                       \
      "CPU forward: reads of a block for its moments: 2 sums it, then its centred squares "     \
      "from cache; 1 sums values and squares shifted by the block's first value")               \
    X(blocks_per_partial, 1, 1 << 20, "CPU: block moments per partial sum of the group cascade") \
    X(dx_prefetch_min, 1, 1 << 30,                                                              \
      "CPU nchw backward: least values per group (C / G * S) for the sums to prefetch dx")      \
    X(dx_prefetch_max, 1, 1 << 30,                                                              \
      "CPU nchw backward: most values per group for the sums to prefetch dx")                   \
    X(dx_prefetch_total, 1, 1 << 30,                                                            \
      "CPU nchw backward: least values of x (N * C * S) for the sums to prefetch dx")           \
    X(next_prefetch_total, 1, 1 << 30,                                                          \
      "CPU nchw forward: least values of x (N * C * S) for plain y to prefetch the next group; " \
      "the maximum compiles no prefetching copy")                                                \
    X(fused_copies, 1, 2,                                                                      \
      "CPU forward: copies of the pipeline for the fused activations: 2 gives SiLU its own "  \
      "(faster), 1 serves every activation from one (smaller)")                                 \
    X(gpu_threads, 32, 1024, "GPU: threads per block of the reductions (multiple of 32)")      \
    X(gpu_block, 1, 1 << 20, "GPU: values of a row per block moment")                          \
    X(gpu_tile_channels, 1, 1024, "GPU nhwc split: channel threads per block")                  \
    X(gpu_row_threads, 1, 64, "GPU nhwc split: row threads per block")                          \
    X(gpu_y_per_thread, 1, 64, "GPU: y values per thread of normalize")

struct Tuning {
#define GN_TUNING_MEMBER(name, lo, hi, doc) int name = 0;
    GN_TUNING_FIELDS(GN_TUNING_MEMBER)
#undef GN_TUNING_MEMBER
};

struct TuningField {
    const char *name;
    int Tuning::*member;
    int min, max;
    const char *meaning;
};

inline constexpr TuningField kTuningFields[] = {
#define GN_TUNING_ROW(name, lo, hi, doc) {#name, &Tuning::name, lo, hi, doc},
    GN_TUNING_FIELDS(GN_TUNING_ROW)
#undef GN_TUNING_ROW
};

// A GPU block's moments that the group schedule keeps in shared memory (8 bytes each):
// 16 KiB, well inside every CUDA device's 48 KiB per block.
inline constexpr int kGpuSharedMomentBytes = 16 * 1024;

// The defaults: measured on the machines named in the comments of each schedule file.
inline Tuning default_tuning(Family family, Layout layout, GpuShape shape) {
    Tuning t;
    t.blocks_per_partial = 32;  // a float32 chain of <= 32 block moments per partial
    t.rows_per_step = 1;
    switch (family) {
    case Family::X86:
    case Family::Arm:
        // x86: nchw four vectors of accumulators keep enough adds in flight at L1/L2 speed;
        // y two vectors at a time (a half-precision y is then converted in registers and
        // stored whole: one vector's VCVTPS2PH folded into its store is slow on Zen 4).
        // nhwc: 512 rows of C <= 320 float channels fit L2; eight rows per step of the
        // second moment (10-30% faster in cache than one).
        t.y_vectors = layout == Layout::NCHW ? 2 : 1;
        t.acc_vectors = 4;
        t.lane_steps = 64;
        t.stat_vectors = 1;
        t.block_rows = 512;
        t.rows_per_step = 8;
        t.rows_per_chain = 64;
        t.rows_per_task = 32;
        // The nchw backward's prefetch of dx in its sums (generator): on groups of 64-256 KB
        // of float32 (x, dy and dx within the 1 MiB L2) of tensors whose x, dy and dx exceed
        // the 32 MiB L3 here. Groups of 1 MB lost 0.81-0.89x, and 400 KB 0.91-0.96x at 2
        // threads (lines leave L2 before dx is written: extra traffic); tensors that fit L3
        // up to 0.92x (dx's lines are in L3 already when a call repeats).
        t.dx_prefetch_min = 16384;
        t.dx_prefetch_max = 65536;
        t.dx_prefetch_total = 1 << 21;
        // The nchw forward's plain y prefetches the next group's x, so that its reads overlap
        // this group's stores instead of following them: 1.05-1.25x at 1 thread on tensors
        // of 10 MB of float32 and more (Zen 3); 1-8 MB tensors (in L3 with y) ran
        // 0.85-0.95x, the prefetch (non-temporal: Halide's only kind) evicting what the next
        // group's passes re-read. (The same in the backward's dx pass, x and dy, ran
        // 0.8-0.9x: its group's x, dy and dx already fill L2.)
        t.next_prefetch_total = 9 << 18;
        // SiLU through the per-vector activation branch ran 1.1-1.6x slower than in a copy
        // of its own (1 thread, Zen 3), which costs 1.27x the forward code, 1.69x the
        // residual's (docs/SIZES.md).
        t.fused_copies = 2;
        // A block's moments in one read on nchw: 1.00-1.24x over two on the bench suite
        // (1 thread, Zen 3, f32), in cache and from DRAM. nhwc two: one read was 1.06-1.41x
        // on tensors in L3 but 0.86-0.94x on most larger than L3 (its eight-row steps read
        // DRAM in an order the prefetcher follows less well than the sum pass's rows). ARM
        // takes the same (untimed on hardware).
        t.stat_passes = layout == Layout::NCHW ? 1 : 2;
        if (family == Family::Arm) {
            // NEON: 4 lanes a register, 32 registers: y 8 values (one 128-bit f16 store)
            // per iteration, nhwc accumulators two vectors wide, 4 rows per step of the
            // second moment (untimed on hardware).
            t.y_vectors = 2;
            t.stat_vectors = 2;
            t.rows_per_step = 4;
        }
        break;
    case Family::Gpu:
        // split: nchw 16 values per thread of a block; nhwc 128 rows of a 32-channel tile.
        // group: 32 values per thread; the group's block moments fit shared memory.
        t.gpu_threads = 256;
        t.gpu_block = shape == GpuShape::Group ? 32
                      : layout == Layout::NCHW ? 16 * t.gpu_threads
                                               : 128;
        t.gpu_tile_channels = 32;
        t.gpu_row_threads = 8;
        t.gpu_y_per_thread = 4;
        break;
    }
    return t;
}

struct TuningOverride {
    const char *name;
    int value;
};

// Sets field `name`; false when there is no such field.
inline bool set_tuning_field(Tuning &t, const char *name, int value) {
    for (const TuningField &f : kTuningFields) {
        if (std::strcmp(f.name, name) == 0) {
            t.*f.member = value;
            return true;
        }
    }
    return false;
}

// "" or what is wrong with a record (a value out of range, inconsistent fields).
inline std::string check_tuning(Family family, const Tuning &t) {
    char why[160] = "";
    for (const TuningField &f : kTuningFields) {
        const int v = t.*f.member;
        if (v != 0 && (v < f.min || v > f.max)) {
            std::snprintf(why, sizeof(why), "tuning field %s = %d is outside [%d, %d]", f.name,
                          v, f.min, f.max);
            return why;
        }
    }
    if (family != Family::Gpu && t.rows_per_chain % t.rows_per_step != 0) {
        return "tuning field rows_per_chain must be a multiple of rows_per_step";
    }
    // (A block of fewer rows than a step holds no whole step: its rows would go uncounted.)
    if (family != Family::Gpu && t.block_rows < t.rows_per_step) {
        return "tuning field block_rows must be at least rows_per_step";
    }
    if (family == Family::Gpu && t.gpu_threads % 32 != 0) {
        return "tuning field gpu_threads must be a multiple of 32";
    }
    return "";
}

// The family's defaults with the non-zero overrides applied, checked. Returns "" or what is
// wrong (unknown field, value out of range).
inline std::string resolve_tuning(Family family, Layout layout, GpuShape shape,
                                  std::initializer_list<TuningOverride> overrides, Tuning *out) {
    Tuning t = default_tuning(family, layout, shape);
    for (const TuningOverride &o : overrides) {
        if (o.value == 0) continue;
        if (!set_tuning_field(t, o.name, o.value)) return std::string("unknown tuning field ") + o.name;
    }
    std::string why = check_tuning(family, t);
    if (why.empty()) *out = t;
    return why;
}

// The same from the variant table's form, "name=value,name=value" ("" = the defaults).
inline std::string resolve_tuning_spec(Family family, Layout layout, GpuShape shape,
                                       const char *spec, Tuning *out) {
    Tuning t = default_tuning(family, layout, shape);
    for (const char *p = spec; p && *p;) {
        const char *eq = std::strchr(p, '='), *end = std::strchr(p, ',');
        if (!end) end = p + std::strlen(p);
        if (!eq || eq > end) return std::string("bad tuning spec ") + spec;
        const std::string name(p, eq);
        if (!set_tuning_field(t, name.c_str(), std::atoi(eq + 1))) {
            return "unknown tuning field " + name;
        }
        p = *end ? end + 1 : end;
    }
    std::string why = check_tuning(family, t);
    if (why.empty()) *out = t;
    return why;
}

}  // namespace groupnorm_gen
