// groupnorm-tune (also `groupnorm tune`): the autotuner of the CPU forward schedules.
//
// Per layout, every candidate of the search space (search_space.h) is JIT-compiled for this
// machine from the same generator the build uses, checked against the float64 reference (the
// JIT gate, tests/jit_gate.h) and only then timed: on each shape, the candidates in a fresh
// random order each repetition, with a streaming copy of the same bytes (the roofline) timed
// in the same rounds; medians. Shapes are grouped into classes by group size and by whether
// x and y fit the cache, and the candidate with the best geometric-mean time over a
// class's shapes is kept for it, if it beats the defaults by more than 3% and by more than a
// second copy of the defaults (the control, timed as a candidate) differs from them, and is
// not slower than them by as much on any of its shapes: otherwise the defaults stay.
// Halide's CPU autoschedulers (Adams2019, Mullapudi2016, Li2018) are contenders in the same
// rounds: per shape, each schedules the same algorithm for that shape's estimates, is gated on
// that shape (their splits are sized to it) and timed beside the candidates; they are reported,
// never kept (an AOT variant serves every shape of a class).
// The result is a tuning table (JSON) with the machine, the measurements and the rejects.
// Measurements go to <out>.partial as they are made; --resume continues from there.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "Halide.h"
#include "bench/suite.h"
#include "canonicalise.h"
#include "dispatch.h"
#include "forward_case.h"
#include "jit_gate.h"
#include "prefetch_policy.h"
#include "search_space.h"
#include "support/roofline.h"

namespace {

// The schedule family of the machine the tuner runs on (and JIT-compiles for).
#if defined(__aarch64__)
constexpr groupnorm_gen::Family kFamily = groupnorm_gen::Family::Arm;
constexpr const char *kFamilyName = "arm";
#else
constexpr groupnorm_gen::Family kFamily = groupnorm_gen::Family::X86;
constexpr const char *kFamilyName = "x86";
#endif

using json = nlohmann::json;
namespace gd = groupnorm::detail;
namespace gt = groupnorm::tune;

// Halide's CPU autoschedulers and their plugins (tools/tune/CMakeLists.txt).
struct Autoscheduler {
    const char *name, *plugin;
};
constexpr Autoscheduler kAutoschedulers[] = {{"Adams2019", GN_PLUGIN_ADAMS2019},
                                             {"Mullapudi2016", GN_PLUGIN_MULLAPUDI2016},
                                             {"Li2018", GN_PLUGIN_LI2018}};
const std::string kAutoPrefix = "auto:";  // an autoscheduler's spec: auto:NAME

std::string join(const std::vector<std::string> &parts, const char *separator) {
    std::string out;
    for (size_t i = 0; i < parts.size(); i++) out += (i ? separator : "") + parts[i];
    return out;
}

struct Options {
    std::string shapes_file, out = "tuning.json", space = "quick", dtype = "f32";
    std::vector<std::string> layouts = {"nchw", "nhwc"};
    std::vector<std::string> autoschedulers;  // default: all of kAutoschedulers
    std::vector<std::string> candidates;      // instead of the space: these specs
    int threads = 1, reps = 7, max_candidates = 0;
    int64_t cache_bytes = -1;  // what the _in_cache classes' x and y fit (-1: half the last level)
    bool resume = false;
};

struct TuneShape {
    std::string name;
    std::vector<int64_t> dims;
    int64_t groups;
};

// The shape classes of the table: by the values a group holds (D * S), the unit a CPU
// schedule streams (a small group stays in L1/L2 between the statistics and normalize), and
// by whether x and y together fit half the last-level cache (`_in_cache`; --cache-bytes). A
// layer's input that does is still there from the layer that wrote it (and across the timed
// calls); one that does not comes from DRAM, where the order of the reads decides what the
// prefetchers hide (nhwc one read of a block with four rows a step: 0.78-0.89x the time of
// the defaults in cache, 0.90-1.05x from DRAM). Half: the rest holds other cores' and
// tenants' data (on a 32 MiB L3 here a streaming copy of 8 MiB of x ran at 65-100 GB/s, of
// 11.6 MiB at 38-71, of 32 MiB at 25-37).
struct ShapeClass {
    std::string name;
    int64_t min_group, max_group;    // D * S, inclusive; -1 = none
    int64_t min_values, max_values;  // N * C * S, inclusive; -1 = none
};

// cached_values: the most values of x whose x and y fit the cache (0: no split by size).
std::vector<ShapeClass> shape_classes(int64_t cached_values) {
    const ShapeClass by_group[] = {{"small", -1, 16384, -1, -1},
                                   {"medium", 16385, 262144, -1, -1},
                                   {"large", 262145, -1, -1, -1}};
    std::vector<ShapeClass> classes;
    for (ShapeClass c : by_group) {
        if (cached_values > 0) {
            ShapeClass in_cache = c;
            in_cache.name += "_in_cache";
            in_cache.max_values = cached_values;
            classes.push_back(in_cache);
            c.min_values = cached_values + 1;
        }
        classes.push_back(c);
    }
    return classes;
}

bool in_class(const ShapeClass &c, const TuneShape &s) {
    int64_t values = 1;
    for (int64_t d : s.dims) values *= d;
    const int64_t group = values / s.dims[0] / s.groups;
    auto within = [](int64_t v, int64_t lo, int64_t hi) { return (lo < 0 || v >= lo) && (hi < 0 || v <= hi); };
    return within(group, c.min_group, c.max_group) && within(values, c.min_values, c.max_values);
}

std::string bounds_of(const ShapeClass &c) {
    std::string b;
    auto add = [&](const char *name, int64_t v) {
        if (v >= 0) b += std::string(b.empty() ? "" : ",") + name + "=" + std::to_string(v);
    };
    add("min_group", c.min_group);
    add("max_group", c.max_group);
    add("min_values", c.min_values);
    add("max_values", c.max_values);
    return b.empty() ? "-" : b;
}

// The size of the largest data cache of cpu0 (sysfs), 0 when the system does not say.
int64_t last_level_cache_bytes() {
    int best_level = 0;
    int64_t bytes = 0;
    for (int i = 0; i < 16; i++) {
        const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        std::ifstream level_in(dir + "level"), type_in(dir + "type"), size_in(dir + "size");
        int level = 0;
        std::string type, size;
        if (!(level_in >> level) || !(type_in >> type) || !(size_in >> size)) continue;
        if (type == "Instruction" || level <= best_level || size.empty()) continue;
        int64_t v = std::atoll(size.c_str());
        if (size.back() == 'K') v <<= 10;
        if (size.back() == 'M') v <<= 20;
        best_level = level, bytes = v;
    }
    return bytes;
}

std::vector<TuneShape> load_shapes(const std::string &file) {
    std::vector<TuneShape> shapes;
    if (file.empty()) {
        for (const auto &s : groupnorm::bench::suite()) shapes.push_back({s.name, s.shape, s.groups});
        return shapes;
    }
    std::ifstream in(file);
    if (!in) throw std::runtime_error("--shapes: cannot read " + file);
    const json j = json::parse(in);  // [{"name": ..., "shape": [N, C, ...], "groups": G}, ...]
    for (const json &e : j) {
        TuneShape s{e.value("name", std::string()), e.at("shape").get<std::vector<int64_t>>(),
                    e.at("groups").get<int64_t>()};
        if (s.dims.size() < 3 || s.groups <= 0 || s.dims[1] % s.groups != 0) {
            throw std::runtime_error("--shapes: " + e.dump() + ": need shape (N, C, spatial...) "
                                     "and groups dividing C");
        }
        if (s.name.empty()) s.name = gntest::to_string(s.dims) + "_g" + std::to_string(s.groups);
        shapes.push_back(s);
    }
    return shapes;
}

size_t dtype_bytes(const std::string &d) { return d == "f32" ? 4 : 2; }

gntest::DType dtype_of(const std::string &d) {
    return d == "f16" ? gntest::DType::F16 : d == "bf16" ? gntest::DType::BF16 : gntest::DType::F32;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// "[#####     ] 12/40 what, ETA 1m05s" on stderr, rewritten in place.
void progress(const char *what, size_t done, size_t total,
              std::chrono::steady_clock::time_point start) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int eta = done ? (int)(elapsed / done * (total - done)) : 0;
    const int filled = total ? (int)(30 * done / total) : 30;
    std::fprintf(stderr, "\r[%s%s] %zu/%zu %s, ETA %dm%02ds   ", std::string(filled, '#').c_str(),
                 std::string(30 - filled, ' ').c_str(), done, total, what, eta / 60, eta % 60);
    if (done == total) std::fputc('\n', stderr);
}

// What earlier runs measured (<out>.partial): a first line "#\t<context>" (what the timings
// depend on: the JIT target, threads, dtype), then "layout\tspec\tshape\tns\tcopy_ns" per
// measurement, "layout\tspec\t!\treason" per rejected candidate. --resume refuses a file of
// another context (or of none: an older tuner's), whose timings would mix with this run's.
struct Partial {
    std::map<std::string, std::pair<double, double>> measured;  // layout|spec|shape
    std::map<std::string, std::string> rejected;                 // layout|spec
    std::ofstream log;
    static std::string key(const std::string &a, const std::string &b, const std::string &c = "") {
        return a + "|" + b + (c.empty() ? "" : "|" + c);
    }
    void open(const std::string &path, bool resume, const std::string &context) {
        std::ifstream in;
        if (resume) in.open(path);
        const bool fresh = !in.is_open();  // no --resume, or nothing to resume from
        if (!fresh) {
            std::string line;
            if (!std::getline(in, line) || line != "#\t" + context) {
                throw std::runtime_error(
                    "--resume: " + path + " was measured " +
                    (line.rfind("#\t", 0) == 0 ? "with " + line.substr(2)
                                               : std::string("by an older tuner (no context line)")) +
                    ", this run is " + context + ": run without --resume to start over");
            }
            while (std::getline(in, line)) {
                std::vector<std::string> f;
                std::stringstream ss(line);
                for (std::string x; std::getline(ss, x, '\t');) f.push_back(x);
                if (f.size() == 4 && f[2] == "!") rejected[key(f[0], f[1])] = f[3];
                if (f.size() == 5) measured[key(f[0], f[1], f[2])] = {std::stod(f[3]), std::stod(f[4])};
            }
            in.close();
        }
        log.open(path, fresh ? std::ios::trunc : std::ios::app);
        if (!log) throw std::runtime_error("cannot write " + path);
        log << std::setprecision(17);  // a resumed table reads back the same numbers
        if (fresh) log << "#\t" << context << std::endl;
    }
    void reject(const std::string &layout, const std::string &spec, std::string why) {
        std::replace(why.begin(), why.end(), '\n', ' ');
        std::replace(why.begin(), why.end(), '\t', ' ');
        rejected[key(layout, spec)] = why;
        log << layout << '\t' << spec << "\t!\t" << why << std::endl;
    }
    void record(const std::string &layout, const std::string &spec, const std::string &shape,
                double ns, double copy_ns) {
        measured[key(layout, spec, shape)] = {ns, copy_ns};
        log << layout << '\t' << spec << '\t' << shape << '\t' << ns << '\t' << copy_ns << std::endl;
    }
};

std::map<std::string, std::string> params_of(const std::string &layout, const std::string &spec) {
    std::map<std::string, std::string> p = {{"layout", layout}};
    if (spec == gt::kControlSpec) return p;  // the defaults again
    std::stringstream ss(spec);
    for (std::string kv; std::getline(ss, kv, ',');) {
        const size_t eq = kv.find('=');
        p[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    return p;
}

// Compiles and gates every candidate not rejected before and not measured on every shape
// yet; returns the usable ones.
std::map<std::string, Halide::Callable> compile_and_gate(const Options &o, const std::string &layout,
                                                         const std::vector<std::string> &specs,
                                                         const std::vector<TuneShape> &shapes,
                                                         Partial &partial) {
    std::map<std::string, Halide::Callable> usable;
    const auto start = std::chrono::steady_clock::now();
    std::vector<gntest::Shape> gate_shapes = gntest::core_shapes();
    gate_shapes.push_back({{1, 8, 3000}, 2});
    size_t done = 0;
    for (const std::string &spec : specs) {
        progress(("candidates compiled and gated (" + layout + ")").c_str(), done++, specs.size(), start);
        if (partial.rejected.count(Partial::key(layout, spec))) continue;
        if (std::all_of(shapes.begin(), shapes.end(), [&](const TuneShape &s) {
                return partial.measured.count(Partial::key(layout, spec, s.name)) > 0;
            })) {
            continue;
        }
        Halide::Callable f;
        std::string why;
        if (!gntest::jit_compile_forward(params_of(layout, spec), dtype_of(o.dtype), &f, &why)) {
            partial.reject(layout, spec, why);
            continue;
        }
        const gntest::GateResult gate =
            gntest::jit_gate_callable(f, layout, dtype_of(o.dtype), gate_shapes, gntest::fresh_seed());
        if (!gate.passed) {
            partial.reject(layout, spec, "fails the float64 gate: " + gate.detail);
            continue;
        }
        usable.emplace(spec, f);
    }
    progress(("candidates compiled and gated (" + layout + ")").c_str(), specs.size(), specs.size(), start);
    return usable;
}

// The autoschedulers' pipelines for one shape (estimates: its extents), each gated on that
// shape; those not measured or rejected before.
std::map<std::string, Halide::Callable> autoscheduled_for(const Options &o, const std::string &layout,
                                                          const TuneShape &shape, Partial &partial) {
    std::map<std::string, Halide::Callable> usable;
    int64_t spatial = 1;
    for (size_t i = 2; i < shape.dims.size(); i++) spatial *= shape.dims[i];
    for (const std::string &name : o.autoschedulers) {
        const std::string spec = kAutoPrefix + name, reject_key = spec + "@" + shape.name;
        if (partial.rejected.count(Partial::key(layout, reject_key)) ||
            partial.measured.count(Partial::key(layout, spec, shape.name))) {
            continue;
        }
        const Autoscheduler *a = nullptr;  // (--autoschedulers accepts only these names)
        for (const Autoscheduler &k : kAutoschedulers) if (name == k.name) a = &k;
        std::map<std::string, std::string> params = {
            {"layout", layout},
            {"estimate_n", std::to_string(shape.dims[0])},
            {"estimate_c", std::to_string(shape.dims[1])},
            {"estimate_s", std::to_string(spatial)},
            {"estimate_groups", std::to_string(shape.groups)}};
        Halide::Callable f;
        std::string why;
        if (!gntest::jit_compile_forward_autoscheduled(params, dtype_of(o.dtype), a->name, a->plugin,
                                                       o.threads, &f, &why)) {
            partial.reject(layout, reject_key, why);
            continue;
        }
        gntest::GateResult gate;
        try {
            gate = gntest::jit_gate_callable(f, layout, dtype_of(o.dtype), {{shape.dims, shape.groups}},
                                             gntest::fresh_seed());
        } catch (const Halide::RuntimeError &e) {  // the JIT's errors are thrown
            partial.reject(layout, reject_key, "fails at run time: " + std::string(e.what()));
            continue;
        }
        if (!gate.passed) {
            partial.reject(layout, reject_key, "fails the float64 gate: " + gate.detail);
            continue;
        }
        usable.emplace(spec, f);
    }
    return usable;
}

// Times every usable candidate on every shape (those not measured before), interleaved, with
// the autoschedulers' pipelines for the shape.
void measure(const Options &o, const std::string &layout, const std::vector<TuneShape> &shapes,
             std::map<std::string, Halide::Callable> &usable, Partial &partial) {
    std::mt19937_64 rng(gntest::fresh_seed());
    const auto start = std::chrono::steady_clock::now();
    size_t done = 0;
    for (const TuneShape &shape : shapes) {
        progress(("shapes timed (" + layout + ")").c_str(), done++, shapes.size(), start);
        std::map<std::string, Halide::Callable> contenders = autoscheduled_for(o, layout, shape, partial);
        std::vector<std::string> todo;
        for (const auto &[spec, f] : contenders) todo.push_back(spec);
        for (const auto &[spec, f] : usable) {
            if (!partial.measured.count(Partial::key(layout, spec, shape.name))) {
                todo.push_back(spec);
                contenders.emplace(spec, f);
            }
        }
        if (todo.empty()) continue;
        gntest::ForwardCase c({shape.dims, shape.groups}, dtype_of(o.dtype), dtype_of(o.dtype),
                              layout == "nhwc" ? gntest::Layout::ChannelsLast : gntest::Layout::Contiguous,
                              true, 1.0, rng);
        gd::Problem p;
        if (gd::validate_forward(c.x.dl(), c.g(), c.b(), shape.groups, 1e-5, c.y.dl(), c.mean.dl(),
                                 c.rstd.dl(), &p) != GN_STATUS_SUCCESS) {
            throw std::runtime_error(shape.name + ": " + gn_last_error_message());
        }
        gd::ForwardArgs a(p);
        const int32_t prefetch = gd::prefetch_ahead();  // what dispatch passes here
        auto call = [&](Halide::Callable &f) {
            if (f(&a.x.buf, &a.x_rows.buf, &a.gamma.buf, &a.beta.buf, (int32_t)p.G, 1e-5f, 0,
                  prefetch, &a.y.buf, &a.mean.buf, &a.rstd.buf) != 0) {
                throw std::runtime_error("a gated candidate failed on " + shape.name);
            }
        };
        // Calls per sample: about 2 ms of the defaults' time (a single call of a small shape
        // is below the clock's useful resolution); a resumed run may have only others left.
        using clock = std::chrono::steady_clock;
        Halide::Callable &base = usable.count("") ? usable.at("") : contenders.begin()->second;
        call(base);
        auto t0 = clock::now();
        call(base);
        const double once = std::chrono::duration<double, std::nano>(clock::now() - t0).count();
        const int calls = std::clamp((int)(2e6 / std::max(once, 1.0)), 1, 10000);
        size_t bytes = dtype_bytes(o.dtype);
        for (int64_t d : shape.dims) bytes *= (size_t)d;
        std::map<std::string, std::vector<double>> samples;
        std::vector<double> copy;
        for (int rep = 0; rep < o.reps; rep++) {
            std::shuffle(todo.begin(), todo.end(), rng);
            for (const std::string &spec : todo) {
                Halide::Callable &f = contenders.at(spec);
                call(f);  // warm: the data in cache as the first of a run of calls finds it
                t0 = clock::now();
                for (int i = 0; i < calls; i++) call(f);
                samples[spec].push_back(std::chrono::duration<double, std::nano>(clock::now() - t0).count() / calls);
            }
            t0 = clock::now();
            for (int i = 0; i < calls; i++) groupnorm::support::stream_copy(c.x.dl()->data, c.y.dl()->data, bytes, o.threads);
            copy.push_back(std::chrono::duration<double, std::nano>(clock::now() - t0).count() / calls);
        }
        for (const std::string &spec : todo) {
            partial.record(layout, spec, shape.name, median(samples[spec]), median(copy));
        }
    }
    progress(("shapes timed (" + layout + ")").c_str(), shapes.size(), shapes.size(), start);
}

// The JIT target: of the build's CPU targets (GN_CPU_TARGETS, best first), the first whose
// CPU features this machine has, as the multi-target libraries' run-time check picks. The
// host's own target would time other code (on a Zen 5, tune_znver5 and avx512_zen5 against
// the variants' avx512_skylake level).
std::string aot_level_of_this_machine() {
    using T = Halide::Target;
    // The instruction-set features (the targets' others, large_buffers say, run anywhere).
    const T::Feature isa[] = {T::SSE41, T::AVX, T::AVX2, T::AVXVNNI, T::FMA, T::FMA4, T::F16C,
                              T::AVX512, T::AVX512_KNL, T::AVX512_Skylake, T::AVX512_Cannonlake,
                              T::AVX512_SapphireRapids, T::AVX512_Zen4, T::AVX512_Zen5, T::AVX10_1,
                              T::SVE, T::SVE2, T::ARMDotProd, T::ARMFp16, T::ARMv81a, T::ARMv82a,
                              T::ARMv83a, T::ARMv84a, T::ARMv85a, T::ARMv86a, T::ARMv87a,
                              T::ARMv88a, T::ARMv89a};
    const T host = Halide::get_host_target();
    std::stringstream ss(GN_CPU_TARGETS);
    for (std::string t; std::getline(ss, t, ',');) {
        const T target(t);
        if (std::all_of(std::begin(isa), std::end(isa), [&](T::Feature f) {
                return !target.has_feature(f) || host.has_feature(f);
            })) {
            return target.with_feature(T::JIT).to_string();
        }
    }
    std::fprintf(stderr, "groupnorm-tune: this CPU runs none of %s; timing the host's target\n",
                 GN_CPU_TARGETS);
    return Halide::get_jit_target_from_environment().to_string();
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    }
    return "unknown";
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

// The best candidate per (layout, class), with its per-shape evidence.
json choose(const Options &o, const std::vector<TuneShape> &shapes, const std::vector<std::string> &specs,
            const std::string &layout, const Partial &partial) {
    json classes = json::array();
    // x and y of the class's tensors fit the cache: x's values at most cache / 2 / dtype size.
    for (const ShapeClass &cls : shape_classes(o.cache_bytes / 2 / (int64_t)dtype_bytes(o.dtype))) {
        std::vector<const TuneShape *> members;
        for (const TuneShape &s : shapes) {
            if (in_class(cls, s)) members.push_back(&s);
        }
        if (members.empty()) continue;
        auto time = [&](const std::string &spec, const TuneShape &s) -> double {
            auto it = partial.measured.find(Partial::key(layout, spec, s.name));
            return it == partial.measured.end() ? NAN : it->second.first;
        };
        // Geometric mean over the class of a candidate's time over `base` (NaN when a shape
        // has no measurement: a rejected candidate).
        auto geomean = [&](const std::string &spec, auto base) {
            double log_sum = 0;
            for (const TuneShape *s : members) log_sum += std::log(time(spec, *s) / base(*s));
            return std::exp(log_sum / members.size());
        };
        // The defaults' time: the faster of their two copies (the same code; the slower one
        // met more of the machine's other work).
        auto defaults_time = [&](const TuneShape &s) {
            return std::min(time("", s), time(gt::kControlSpec, s));
        };
        auto score_of = [&](const std::string &spec) { return geomean(spec, defaults_time); };
        const double control = geomean(gt::kControlSpec, [&](const TuneShape &s) { return time("", s); });
        // A candidate must beat the defaults by more than 3% and by more than the defaults
        // differ from themselves in this run.
        const double needed = std::min(0.97, std::exp(-std::fabs(std::log(control))));
        std::string best = "";
        double best_score = 1.0;
        // Nor may it be slower than the defaults on any shape of the class by more than that
        // (one read of a block on nhwc, stat_passes=1: 0.71-0.84x the time on SD UNet shapes
        // in L3, 1.16x on resnet 8x256x56x56 from DRAM, all in the medium class).
        auto slows_a_shape = [&](const std::string &spec) {
            for (const TuneShape *s : members) {
                if (time(spec, *s) * needed > defaults_time(*s)) return true;
            }
            return false;
        };
        for (const std::string &spec : specs) {
            if (spec == gt::kControlSpec || slows_a_shape(spec)) continue;
            const double score = score_of(spec);
            if (std::isfinite(score) && score < best_score) best = spec, best_score = score;
        }
        const double best_seen = best_score;
        const std::string best_seen_spec = best;
        if (!(best_score < needed)) best = "", best_score = 1.0;  // within the noise: the defaults
        json rows = json::array();
        for (const TuneShape *s : members) {
            const auto &b = partial.measured.at(Partial::key(layout, best, s->name));
            // Each autoscheduler's time on the shape (null: rejected, with the reason in the
            // table's "rejected").
            json autos = json::object();
            for (const std::string &name : o.autoschedulers) {
                const double t = time(kAutoPrefix + name, *s);
                autos[name] = std::isfinite(t) ? json(t) : json(nullptr);
            }
            rows.push_back({{"shape", s->name}, {"dims", s->dims}, {"groups", s->groups},
                            {"default_ns", defaults_time(*s)}, {"tuned_ns", best.empty() ? defaults_time(*s) : b.first},
                            {"copy_ns", b.second},
                            {"tuned_share_of_copy", b.second / (best.empty() ? defaults_time(*s) : b.first)},
                            {"autoscheduled_ns", autos}});
        }
        classes.push_back({{"op", "fwd"}, {"dtype", o.dtype}, {"layout", layout},
                           {"class", cls.name}, {"bounds", bounds_of(cls)},
                           {"tuning", best.empty() ? "-" : best},
                           {"geomean_vs_default", best_score},
                           {"control_vs_default", control}, {"needed_below", needed},
                           {"best_candidate", best_seen_spec.empty() ? "-" : best_seen_spec},
                           {"best_candidate_vs_default", best_seen}, {"shapes", rows}});
    }
    return classes;
}

}  // namespace

// Per shape, as a markdown table: the defaults, the tuned schedule and each autoscheduler
// (microseconds; their time over the tuned one), and the copy roofline's share.
void print_report(const Options &o, const json &classes) {
    std::printf("\n| layout | shape | class | default us | tuned us | tuned vs default |");
    for (const std::string &name : o.autoschedulers) std::printf(" %s us (x tuned) |", name.c_str());
    std::printf(" tuned %% of copy |\n|---|---|---|---:|---:|---:|");
    for (size_t i = 0; i < o.autoschedulers.size(); i++) std::printf("---:|");
    std::printf("---:|\n");
    for (const json &c : classes) {
        for (const json &r : c["shapes"]) {
            const double tuned = r["tuned_ns"], def = r["default_ns"];
            std::printf("| %s | %s | %s | %.2f | %.2f | %.2fx |", c["layout"].get<std::string>().c_str(),
                        r["shape"].get<std::string>().c_str(), c["class"].get<std::string>().c_str(),
                        def / 1e3, tuned / 1e3, def / tuned);
            for (const std::string &name : o.autoschedulers) {
                const json &t = r["autoscheduled_ns"][name];
                if (t.is_null()) {
                    std::printf(" rejected |");
                } else {
                    std::printf(" %.2f (%.2fx) |", t.get<double>() / 1e3, t.get<double>() / tuned);
                }
            }
            std::printf(" %.0f%% |\n", 100.0 * r["tuned_share_of_copy"].get<double>());
        }
    }
    std::printf("\n");
}

int main(int argc, char **argv) {
    CLI::App app{"Autotunes the CPU forward schedules for this machine and writes a tuning table"};
    Options o;
    for (const Autoscheduler &a : kAutoschedulers) o.autoschedulers.push_back(a.name);
    std::vector<std::string> known_autoschedulers = o.autoschedulers;
    known_autoschedulers.push_back("none");
    app.add_option("--shapes", o.shapes_file,
                   "JSON list of {\"name\", \"shape\": [N, C, ...], \"groups\"} (default: the bench suite)");
    app.add_option("--layouts", o.layouts, "nchw and/or nhwc")->delimiter(',')
        ->check(CLI::IsMember({"nchw", "nhwc"}));
    app.add_option("--dtype", o.dtype, "x's dtype")->check(CLI::IsMember({"f32", "f16", "bf16"}))
        ->capture_default_str();
    app.add_option("--threads", o.threads, "threads of the kernels and the copy")
        ->check(CLI::Range(1, 256))->capture_default_str();
    app.add_option("--space", o.space, "quick or full (search_space.h)")
        ->check(CLI::IsMember({"quick", "full"}))->capture_default_str();
    app.add_option("--reps", o.reps, "timed repetitions per candidate and shape (median)")
        ->check(CLI::Range(3, 101))->capture_default_str();
    app.add_option("--out", o.out, "the tuning table to write")->capture_default_str();
    app.add_option("--max-candidates", o.max_candidates,
                   "only the first N candidates of the space (the defaults first; 0: all)");
    app.add_option("--candidates", o.candidates,
                   "time these tuning specs (field=value,...; ';' between specs) instead of the "
                   "space, after the defaults and the control")
        ->delimiter(';');
    app.add_option("--cache-bytes", o.cache_bytes,
                   "classes split by whether x and y fit this many bytes (default: half the "
                   "last-level cache; 0: classes by group size only)")
        ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
    app.add_flag("--resume", o.resume, "continue from <out>.partial instead of starting over");
    app.add_option("--autoschedulers", o.autoschedulers,
                   "Halide autoschedulers timed beside the candidates, per shape (none: no autoscheduler)")
        ->delimiter(',')->check(CLI::IsMember(known_autoschedulers))
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    o.autoschedulers.erase(std::remove(o.autoschedulers.begin(), o.autoschedulers.end(), "none"),
                           o.autoschedulers.end());

    try {
        // The JIT runtime's thread pool reads this when it starts (on the first call).
        setenv("HL_NUM_THREADS", std::to_string(o.threads).c_str(), 1);
        // Every JIT compile (the gate's, the autoschedulers' children) reads this.
        setenv("HL_JIT_TARGET", aot_level_of_this_machine().c_str(), 0);
        if (o.cache_bytes < 0) o.cache_bytes = last_level_cache_bytes() / 2;
        // Candidates run with the prefetch setting the runtime will use on this machine.
        if (gd::install_prefetch_policy() != GN_STATUS_SUCCESS) {
            throw std::runtime_error(gn_last_error_message());
        }
        const std::vector<TuneShape> shapes = load_shapes(o.shapes_file);
        const std::string started_load = load_average();
        Partial partial;
        const std::string jit_target = Halide::get_jit_target_from_environment().to_string();
        partial.open(o.out + ".partial", o.resume,
                     "jit_target=" + jit_target + " threads=" + std::to_string(o.threads) +
                         " dtype=" + o.dtype + " prefetch=" + std::to_string(gd::prefetch_ahead()));
        json classes = json::array(), measurements = json::array(), rejected = json::array();
        for (const std::string &layout : o.layouts) {
            const auto lay = layout == "nhwc" ? groupnorm_gen::Layout::NHWC : groupnorm_gen::Layout::NCHW;
            std::vector<std::string> specs = gt::candidate_specs(kFamily, lay, o.space == "full");
            if (!o.candidates.empty()) {
                specs.resize(2);  // the defaults and the control
                groupnorm_gen::Tuning defaults;
                groupnorm_gen::resolve_tuning_spec(kFamily, lay, groupnorm_gen::GpuShape::Group, "", &defaults);
                for (const std::string &spec : o.candidates) {
                    groupnorm_gen::Tuning t;
                    const std::string why = groupnorm_gen::resolve_tuning_spec(
                        kFamily, lay, groupnorm_gen::GpuShape::Group, spec.c_str(), &t);
                    if (!why.empty()) throw std::runtime_error("--candidates " + spec + ": " + why);
                    if (!gt::same_tuning(t, defaults)) specs.push_back(spec);  // (as the space does)
                }
            }
            if (o.max_candidates > 0 && (int)specs.size() > o.max_candidates) specs.resize(o.max_candidates);
            auto usable = compile_and_gate(o, layout, specs, shapes, partial);
            if (partial.rejected.count(Partial::key(layout, ""))) {
                throw std::runtime_error(layout + ": the defaults fail the gate: " +
                                         partial.rejected.at(Partial::key(layout, "")));
            }
            measure(o, layout, shapes, usable, partial);
            for (const json &c : choose(o, shapes, specs, layout, partial)) classes.push_back(c);
            for (const std::string &spec : specs) {
                auto r = partial.rejected.find(Partial::key(layout, spec));
                if (r != partial.rejected.end()) {
                    rejected.push_back({{"layout", layout}, {"tuning", spec}, {"reason", r->second}});
                    continue;
                }
                for (const TuneShape &s : shapes) {
                    const auto &m = partial.measured.at(Partial::key(layout, spec, s.name));
                    measurements.push_back({{"layout", layout}, {"tuning", spec.empty() ? "-" : spec},
                                            {"shape", s.name}, {"median_ns", m.first}, {"copy_ns", m.second}});
                }
            }
            for (const std::string &name : o.autoschedulers) {
                const std::string spec = kAutoPrefix + name;
                for (const TuneShape &s : shapes) {
                    auto r = partial.rejected.find(Partial::key(layout, spec + "@" + s.name));
                    if (r != partial.rejected.end()) {
                        rejected.push_back({{"layout", layout}, {"tuning", spec}, {"shape", s.name},
                                            {"reason", r->second}});
                        continue;
                    }
                    const auto &m = partial.measured.at(Partial::key(layout, spec, s.name));
                    measurements.push_back({{"layout", layout}, {"tuning", spec}, {"shape", s.name},
                                            {"median_ns", m.first}, {"copy_ns", m.second}});
                }
            }
        }
        const json table = {
            {"format", 1},
            {"made_by", "groupnorm-tune " +
                            (o.candidates.empty() ? "--space " + o.space
                                                  : "--candidates '" + join(o.candidates, ";") + "'") +
                            " --threads " + std::to_string(o.threads) + " --dtype " + o.dtype +
                            " --cache-bytes " + std::to_string(o.cache_bytes) +
                            (o.shapes_file.empty() ? "" : " --shapes " + o.shapes_file)},
            {"family", kFamilyName},
            {"jit_target", jit_target},
            {"halide", std::to_string(HALIDE_VERSION_MAJOR) + "." + std::to_string(HALIDE_VERSION_MINOR) +
                           "." + std::to_string(HALIDE_VERSION_PATCH)},
            {"machine", {{"cpu", cpu_model()}, {"hardware_threads", std::thread::hardware_concurrency()},
                         {"last_level_cache_bytes", last_level_cache_bytes()},
                         {"prefetch", gd::prefetch_reason()},
                         {"load_average_at_start", started_load}, {"load_average_at_end", load_average()}}},
            {"threads", o.threads},
            {"reps", o.reps},
            {"classes", classes},
            {"measurements", measurements},
            {"rejected", rejected}};
        std::ofstream(o.out) << table.dump(1) << "\n";
        print_report(o, classes);
        for (const json &c : classes) {
            std::printf("%-4s %-15s %-55s %-45s %.3fx of the defaults' time (control %.3fx)\n",
                        c["layout"].get<std::string>().c_str(), c["class"].get<std::string>().c_str(),
                        c["bounds"].get<std::string>().c_str(), c["tuning"].get<std::string>().c_str(),
                        c["geomean_vs_default"].get<double>(), c["control_vs_default"].get<double>());
        }
        std::printf("wrote %s\n", o.out.c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "\ngroupnorm-tune: %s\n", e.what());
        return 1;
    }
    return 0;
}
