// GPU variants without a GPU, and with one.
//   OpenCL/*: every GPU schedule, built for OpenCL, runs on PoCL (a CPU OpenCL device)
//             against the float64 reference: all dtypes, both layouts, both shape classes.
//   CudaDispatch.*: gn_forward with CUDA tensors: without a driver DEVICE_UNAVAILABLE with
//             the reason; with one, mixed devices refused and every CUDA variant checked.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <optional>

#include "backward_case.h"
#include "canonicalise.h"
#include "cuda_interop.h"
#include "dispatch.h"
#include "forward_case.h"
#include "groupnorm/groupnorm.h"
#include "reference.h"
#include "registry_cases.h"

using namespace gntest;
namespace gd = groupnorm::detail;

namespace {

// The core shapes plus shapes that make each schedule's paths run: several blocks per row
// (split: 4096 NCHW / 128 NHWC; group: 32), a partial last block, more than 256
// blocks per group (the finalize threads' strided loop), N * G >= 512 (the registry picks
// `group`).
std::vector<Shape> gpu_shapes() {
    std::vector<Shape> shapes = core_shapes();
    for (Shape extra : std::vector<Shape>{{{1, 8, 9000}, 2}, {{1, 2, 300, 300}, 1},
                                          {{16, 64, 6, 6}, 32}, {{2, 8, 8300}, 4}}) {
        shapes.push_back(extra);
    }
    return shapes;
}

// The data mean of a case: up to +-60 (ForwardCase: CPU-resident tensors, outputs poisoned).
double case_mean(std::mt19937_64 &rng) {
    return 20.0 * std::uniform_real_distribution<double>(-3.0, 3.0)(rng);
}

// The first CPU OpenCL device's extension string (HL_OCL_DEVICE_TYPE=cpu picks that kind),
// or "" when there is none.
std::string opencl_cpu_extensions() {
    using GetPlatforms = int (*)(unsigned, void **, unsigned *);
    using GetDevices = int (*)(void *, uint64_t, unsigned, void **, unsigned *);
    using GetInfo = int (*)(void *, unsigned, size_t, void *, size_t *);
    void *lib = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return "";
    auto platforms = (GetPlatforms)dlsym(lib, "clGetPlatformIDs");
    auto devices = (GetDevices)dlsym(lib, "clGetDeviceIDs");
    auto info = (GetInfo)dlsym(lib, "clGetDeviceInfo");
    void *plat[8], *dev = nullptr;
    unsigned np = 0, nd = 0;
    if (!platforms || !devices || !info || platforms(8, plat, &np) != 0) return "";
    for (unsigned i = 0; i < np && !dev; i++) {
        if (devices(plat[i], 1u << 1 /* CL_DEVICE_TYPE_CPU */, 1, &dev, &nd) != 0) dev = nullptr;
    }
    char ext[8192] = "";
    if (!dev || info(dev, 0x1030 /* CL_DEVICE_EXTENSIONS */, sizeof(ext) - 1, ext, nullptr) != 0) {
        return "";
    }
    return ext;
}

class OpenClVariant : public ::testing::TestWithParam<const gd::Variant *> {
protected:
    void SetUp() override {
        static const std::string ext = opencl_cpu_extensions();
        if (ext.empty()) GTEST_SKIP() << "no CPU OpenCL device (install pocl-opencl-icd)";
        if (GetParam()->dtype != gd::GN_DTYPE_F32 && ext.find("cl_khr_fp16") == std::string::npos) {
            std::printf("SKIP: the OpenCL CPU device lacks cl_khr_fp16, which Halide's OpenCL "
                        "backend needs for float16 and bfloat16 kernels\n");
            GTEST_SKIP() << "OpenCL device lacks cl_khr_fp16";
        }
    }
};

TEST_P(OpenClVariant, MatchesFloat64Reference) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    int ran = 0;
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : gpu_shapes()) {
            for (bool affine : {true, false}) {
                if (!affine && pt != dt) continue;  // no gamma/beta: param dtype is x's
                SCOPED_TRACE(to_string(shape.dims) + " G=" + std::to_string(shape.G) + " " +
                             name(layout) + (affine ? " affine" : " no affine"));
                ForwardCase c(shape, dt, pt, layout, affine, case_mean(rng), rng);
                gd::Problem p;
                ASSERT_EQ(gd::validate_forward(c.x.dl(), c.g(), c.b(), shape.G, 1e-5, c.y.dl(),
                                               c.mean.dl(), c.rstd.dl(), &p),
                          GN_STATUS_SUCCESS)
                    << gn_last_error_message();
                if (p.layout != v.layout || !gd::can_run(v, p)) continue;  // e.g. S = 1 views
                // Every fused activation in turn (the normalize kernel's specializations).
                p.activation = ran % 5;
                SCOPED_TRACE("activation " + std::to_string(p.activation));
                ASSERT_EQ(gd::run_forward(v, p, 1e-5), GN_STATUS_SUCCESS) << gn_last_error_message();
                Reference ref = c.reference(shape.G, 1e-5);
                apply_activation(ref, p.activation);
                EXPECT_TRUE(matches_reference(c.y, ref, &c.mean, &c.rstd));
                EXPECT_TRUE(c.y.gaps_untouched()) << "wrote outside y's view";
                ran++;
            }
        }
    }
    EXPECT_GE(ran, 20) << "too few shapes ran this variant";
}

// The registry chooses the shape class: one block per (n, g) only with many small groups.
TEST(OpenClRegistry, ShapeClassChoice) {
    struct Want { int64_t N, C, S, G; const char *cls; };
    for (const Want &w : {Want{16, 64, 36, 32, "_group"}, Want{1, 64, 36, 32, "_split"},
                          Want{32, 512, 9216, 32, "_split"}, Want{64, 256, 3136, 32, "_group"}}) {
        gd::Problem p;
        p.N = w.N, p.C = w.C, p.S = w.S, p.G = w.G;
        p.device = gd::GN_DEVICE_OPENCL;
        const gd::Variant *v = gd::find_variant(p);
        ASSERT_NE(v, nullptr) << gn_last_error_message();
        EXPECT_NE(std::strstr(v->name, w.cls), nullptr)
            << w.N << "x" << w.C << "x" << w.S << " G=" << w.G << " -> " << v->name;
    }
}

std::string variant_name(const ::testing::TestParamInfo<const gd::Variant *> &info) {
    return info.param->name;
}

INSTANTIATE_TEST_SUITE_P(OpenCL, OpenClVariant,
                         ::testing::ValuesIn(variants_of(gd::GN_DEVICE_OPENCL, gd::GN_OP_FORWARD)), variant_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpenClVariant);

// Every OpenCL backward variant on the GPU shapes (float32: PoCL's CPU device has no fp16).
class OpenClBackward : public ::testing::TestWithParam<const gd::Variant *> {
protected:
    void SetUp() override {
        static const std::string ext = opencl_cpu_extensions();
        if (ext.empty()) GTEST_SKIP() << "no CPU OpenCL device (install pocl-opencl-icd)";
    }
};

TEST_P(OpenClBackward, MatchesFloat64Reference) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    int ran = 0;
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : gpu_shapes()) {
            for (bool affine : {true, false}) {
                SCOPED_TRACE(to_string(shape.dims) + " G=" + std::to_string(shape.G) + " " +
                             name(layout) + (affine ? " gamma" : " no gamma"));
                BackwardCase c(shape, dt, pt, layout, affine, case_mean(rng), 1.5, rng);
                gd::Problem p;
                ASSERT_EQ(c.validate(GN_ACTIVATION_NONE, nullptr, &p), GN_STATUS_SUCCESS)
                    << gn_last_error_message();
                if (p.layout != v.layout || !gd::can_run(v, p)) continue;
                // Every fused activation in turn, with the forward's beta when affine; plain
                // GroupNorm where the data is outside the fused backward's contract (this
                // test's means reach 40 std, and a small group's own std can be far smaller).
                const int act = c.inside_fused_contract() ? ran % 5 : GN_ACTIVATION_NONE;
                SCOPED_TRACE("activation " + std::to_string(act));
                std::optional<Param> beta;
                if (affine && act) beta.emplace(random_param(c.x.C(), pt, rng, 0.0, 1.0));
                if (act == GN_ACTIVATION_RELU) c.avoid_kink(beta ? &*beta : nullptr);
                ASSERT_EQ(c.validate(act, beta ? &*beta : nullptr, &p), GN_STATUS_SUCCESS)
                    << gn_last_error_message();
                ASSERT_EQ(gd::run_backward(v, p), GN_STATUS_SUCCESS) << gn_last_error_message();
                EXPECT_TRUE(matches_backward_reference(c.fused_reference(beta ? &*beta : nullptr, act),
                                                       &c.dx, &c.dgamma, &c.dbeta, c.G));
                EXPECT_TRUE(c.dx.gaps_untouched()) << "wrote outside dx's view";
                ran++;
            }
        }
    }
    EXPECT_GE(ran, 20) << "too few shapes ran this variant";
}

// The GPU cascade (interleaved blocks, then the threads' tree) on long correlated sums.
TEST_P(OpenClBackward, LongCorrelatedSums) {
    const gd::Variant &v = *GetParam();
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("GN_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const DType dt = test_dtype(v.dtype), pt = test_dtype(v.param_dtype);
    int ran = 0;
    for (Layout layout : test_layouts(v.layout)) {
        for (const Shape &shape : {Shape{{2, 4, 12, 4, 9}, 1}, Shape{{1, 4, 256, 256}, 2}}) {
            SCOPED_TRACE(to_string(shape.dims) + " " + name(layout));
            BackwardCase c(shape, dt, pt, layout, true, 0.0, 1.0, rng);
            c.fill_correlated(30.0, rng);
            if (!c.run_variant(v)) continue;
            EXPECT_TRUE(matches_backward_reference(c.reference(), &c.dx, &c.dgamma, &c.dbeta, c.G));
            ran++;
        }
    }
    EXPECT_GE(ran, 1) << "no shape ran this variant";
}

INSTANTIATE_TEST_SUITE_P(OpenCL, OpenClBackward,
                         ::testing::ValuesIn(variants_of(gd::GN_DEVICE_OPENCL, gd::GN_OP_BACKWARD)),
                         variant_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpenClBackward);

// A DLTensor of t's shape and strides at a fake CUDA address (never dereferenced).
DLTensor on_cuda(const DLTensor &t, int device_id = 0) {
    DLTensor d = t;
    d.device = {kDLCUDA, device_id};
    d.data = reinterpret_cast<void *>(uintptr_t(0x7f0000000000));
    return d;
}

TEST(CudaDispatch, NoDriverIsDeviceUnavailable) {
    if (gd::cuda_driver()) GTEST_SKIP() << "a CUDA driver and device are present: see CudaForward";
    Tensor x({2, 8, 4, 4}, DType::F32), y({2, 8, 4, 4}, DType::F32);
    DLTensor xd = on_cuda(*x.dl()), yd = on_cuda(*y.dl());
    EXPECT_EQ(gn_forward(&xd, nullptr, nullptr, 4, 1e-5, &yd, nullptr, nullptr, nullptr),
              GN_STATUS_DEVICE_UNAVAILABLE);
    const std::string msg = gn_last_error_message();
    EXPECT_NE(msg.find("x is a CUDA tensor, but "), std::string::npos) << msg;
    std::printf("  reason reported: %s\n", msg.c_str());
    // A CPU x with a CUDA y: the unusable device is the reported cause, never an abort.
    EXPECT_EQ(gn_forward(x.dl(), nullptr, nullptr, 4, 1e-5, &yd, nullptr, nullptr, nullptr),
              GN_STATUS_DEVICE_UNAVAILABLE);
    EXPECT_NE(std::string(gn_last_error_message()).find("y is a CUDA tensor, but "), std::string::npos);
}

// With a driver: devices must not be mixed, and each CUDA variant matches the reference.
TEST(CudaDispatch, MixedDevicesAreInvalid) {
    if (!gd::cuda_driver()) GTEST_SKIP() << "no CUDA driver: " << gd::cuda_unavailable_reason(0);
    Tensor x({2, 8, 4, 4}, DType::F32), y({2, 8, 4, 4}, DType::F32);
    Param gamma(std::vector<double>(8, 1.0), DType::F32);
    DLTensor xd = on_cuda(*x.dl()), yd = on_cuda(*y.dl());
    EXPECT_EQ(gn_forward(&xd, gamma.dl(), nullptr, 4, 1e-5, &yd, nullptr, nullptr, nullptr),
              GN_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(gn_last_error_message()).find("gamma is on CPU"), std::string::npos)
        << gn_last_error_message();
    EXPECT_EQ(gn_forward(&xd, nullptr, nullptr, 4, 1e-5, y.dl(), nullptr, nullptr, nullptr),
              GN_STATUS_INVALID_ARGUMENT);
}

// Device copy of a host tensor's whole storage span (gaps included, so they stay checked).
struct DeviceCopy {
    const gd::CudaDriver *cu;
    uint64_t ptr = 0;
    size_t bytes = 0;
    DLTensor dl;
    explicit DeviceCopy(const DLTensor &host) : cu(gd::cuda_driver()), dl(host) {
        int64_t last = 0;
        for (int i = 0; i < host.ndim; i++) {
            const int64_t stride = host.strides ? host.strides[i] : 0;
            last += (host.shape[i] - 1) * stride;
        }
        if (!host.strides) {
            last = 1;
            for (int i = 0; i < host.ndim; i++) last *= host.shape[i];
            last -= 1;
        }
        bytes = (size_t)(last + 1) * host.dtype.bits / 8;
        EXPECT_EQ(cu->cuMemAlloc(&ptr, bytes), 0);
        EXPECT_EQ(cu->cuMemcpyHtoD(ptr, host.data, bytes), 0);
        dl.data = reinterpret_cast<void *>(ptr);
        dl.device = {kDLCUDA, 0};
    }
    void copy_back(const DLTensor &host) { EXPECT_EQ(cu->cuMemcpyDtoH(host.data, ptr, bytes), 0); }
    ~DeviceCopy() { cu->cuMemFree(ptr); }
};

// Device 0's primary context made current (what the CUDA runtime and PyTorch use).
void use_primary_context(const gd::CudaDriver *cu) {
    void *ctx = nullptr;
    int dev = 0;
    ASSERT_EQ(cu->cuDeviceGet(&dev, 0), 0);
    ASSERT_EQ(cu->cuDevicePrimaryCtxRetain(&ctx, dev), 0);
    ASSERT_EQ(cu->cuCtxSetCurrent(ctx), 0);
}

TEST(CudaForward, EveryCudaVariantMatchesFloat64Reference) {
    if (!gd::cuda_driver()) GTEST_SKIP() << "no CUDA driver: " << gd::cuda_unavailable_reason(0);
    const gd::CudaDriver *cu = gd::cuda_driver();
    ASSERT_NO_FATAL_FAILURE(use_primary_context(cu));
    std::mt19937_64 rng(fresh_seed());
    for (const gd::Variant *v : variants_of(gd::GN_DEVICE_CUDA, gd::GN_OP_FORWARD)) {
        SCOPED_TRACE(v->name);
        const DType dt = test_dtype(v->dtype), pt = test_dtype(v->param_dtype);
        for (Layout layout : test_layouts(v->layout)) {
            for (const Shape &shape : gpu_shapes()) {
                ForwardCase c(shape, dt, pt, layout, true, case_mean(rng), rng);
                gd::Problem p;
                ASSERT_EQ(gd::validate_forward(c.x.dl(), c.g(), c.b(), shape.G, 1e-5, c.y.dl(),
                                               c.mean.dl(), c.rstd.dl(), &p),
                          GN_STATUS_SUCCESS);
                if (p.layout != v->layout || !gd::can_run(*v, p)) continue;
                DeviceCopy x(*c.x.dl()), y(*c.y.dl()), g(*c.g()), b(*c.b()), m(*c.mean.dl()),
                    r(*c.rstd.dl());
                ASSERT_EQ(gd::validate_forward(&x.dl, &g.dl, &b.dl, shape.G, 1e-5, &y.dl, &m.dl,
                                               &r.dl, &p),
                          GN_STATUS_SUCCESS);
                p.device = gd::GN_DEVICE_CUDA;
                ASSERT_EQ(gd::run_forward(*v, p, 1e-5), GN_STATUS_SUCCESS) << gn_last_error_message();
                ASSERT_EQ(cu->cuCtxSynchronize(), 0);
                y.copy_back(*c.y.dl());
                m.copy_back(*c.mean.dl());
                r.copy_back(*c.rstd.dl());
                EXPECT_TRUE(matches_reference(c.y, c.reference(shape.G, 1e-5), &c.mean, &c.rstd))
                    << to_string(shape.dims) << " " << name(layout);
                EXPECT_TRUE(c.y.gaps_untouched());
            }
        }
    }
}

TEST(CudaBackward, EveryCudaVariantMatchesFloat64Reference) {
    if (!gd::cuda_driver()) GTEST_SKIP() << "no CUDA driver: " << gd::cuda_unavailable_reason(0);
    const gd::CudaDriver *cu = gd::cuda_driver();
    ASSERT_NO_FATAL_FAILURE(use_primary_context(cu));
    std::mt19937_64 rng(fresh_seed());
    for (const gd::Variant *v : variants_of(gd::GN_DEVICE_CUDA, gd::GN_OP_BACKWARD)) {
        SCOPED_TRACE(v->name);
        const DType dt = test_dtype(v->dtype), pt = test_dtype(v->param_dtype);
        for (Layout layout : test_layouts(v->layout)) {
            for (const Shape &shape : gpu_shapes()) {
                BackwardCase c(shape, dt, pt, layout, true, case_mean(rng), 1.5, rng);
                gd::Problem p;
                ASSERT_EQ(gd::validate_backward(c.dy.dl(), c.x.dl(), c.mean.dl(), c.rstd.dl(),
                                                c.g(), c.G, c.dx.dl(), c.dgamma.dl(),
                                                c.dbeta.dl(), &p),
                          GN_STATUS_SUCCESS);
                if (p.layout != v->layout || !gd::can_run(*v, p)) continue;
                DeviceCopy dy(*c.dy.dl()), x(*c.x.dl()), m(*c.mean.dl()), r(*c.rstd.dl()),
                    g(*c.g()), dx(*c.dx.dl()), dg(*c.dgamma.dl()), db(*c.dbeta.dl());
                ASSERT_EQ(gd::validate_backward(&dy.dl, &x.dl, &m.dl, &r.dl, &g.dl, c.G, &dx.dl,
                                                &dg.dl, &db.dl, &p),
                          GN_STATUS_SUCCESS);
                ASSERT_EQ(gd::run_backward(*v, p), GN_STATUS_SUCCESS) << gn_last_error_message();
                ASSERT_EQ(cu->cuCtxSynchronize(), 0);
                dx.copy_back(*c.dx.dl());
                dg.copy_back(*c.dgamma.dl());
                db.copy_back(*c.dbeta.dl());
                EXPECT_TRUE(matches_backward_reference(c.reference(), &c.dx, &c.dgamma, &c.dbeta, c.G))
                    << to_string(shape.dims) << " " << name(layout);
                EXPECT_TRUE(c.dx.gaps_untouched());
            }
        }
    }
}

}  // namespace
