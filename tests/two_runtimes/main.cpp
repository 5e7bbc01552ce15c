// Embedding.TwoRuntimes: libgroupnorm linked into one program beside another Halide AOT
// pipeline with its own Halide runtime. Each keeps its own error handler, thread pool and
// CPU feature hook: our library's runtime is private (runtime/CMakeLists.txt). With a shared
// runtime (e.g. linking groupnorm_dev instead), the checks marked (*) fail.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "HalideBuffer.h"
#include "HalideRuntime.h"
#include "groupnorm/groupnorm.h"
#include "other_pipeline.h"

namespace {

int failures = 0;
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            std::fprintf(stderr, "two_runtimes: FAILED %s (line %d)\n", #cond, __LINE__); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

// The application's own Halide settings.
std::atomic<int> app_errors{0};
char app_last_error[512];
void app_error_handler(void *, const char *msg) {
    app_errors++;
    std::snprintf(app_last_error, sizeof(app_last_error), "%s", msg);
}
std::atomic<int> app_loops{0};
int app_do_par_for(void *uc, halide_task_t task, int min, int size, uint8_t *closure) {
    app_loops++;
    return halide_default_do_par_for(uc, task, min, size, closure);
}
std::atomic<int> gn_pool_calls{0};
int gn_pool(void *, int count, gn_task_fn task, void *ctx) {
    gn_pool_calls++;
    for (int i = 0; i < count; i++) {
        if (int r = task(ctx, i)) return r;
    }
    return 0;
}

// The other pipeline on n inputs, writing `out_n` outputs (out_n > n: its bounds error).
int run_other(int n, int out_n) {
    Halide::Runtime::Buffer<float, 1> in(n), out(out_n);
    for (int i = 0; i < n; i++) in(i) = (float)i;
    const int code = other_pipeline(in, out);
    for (int i = 0; code == 0 && i < out_n; i++) CHECK(out(i) == 2.0f * i);
    return code;
}

// 64 KB of x: above the size whose loops run in order without any pool.
gn_status run_groupnorm() {
    std::vector<float> x(2 * 8 * 1024), y(x.size());
    for (size_t i = 0; i < x.size(); i++) x[i] = std::sin((float)i);
    int64_t shape[3] = {2, 8, 1024};
    DLTensor xt{};
    xt.data = x.data();
    xt.device = {kDLCPU, 0};
    xt.ndim = 3;
    xt.dtype = {kDLFloat, 32, 1};
    xt.shape = shape;
    DLTensor yt = xt;
    yt.data = y.data();
    return gn_forward(&xt, nullptr, nullptr, 4, 1e-5, &yt, nullptr, nullptr, nullptr);
}

}  // namespace

int main() {
    halide_set_error_handler(app_error_handler);
    halide_set_custom_do_par_for(app_do_par_for);
    halide_set_num_threads(3);

    CHECK(run_other(64, 64) == 0);
    CHECK(app_loops > 0);

    // Our library, with its own pool and thread count; it installs its error handler and
    // CPU feature cap on first use.
    CHECK(gn_set_num_threads(1) == GN_STATUS_SUCCESS);
    CHECK(run_groupnorm() == GN_STATUS_SUCCESS);
    CHECK(gn_set_thread_pool(gn_pool, nullptr, 2) == GN_STATUS_SUCCESS);
    const int loops_before = app_loops;
    CHECK(run_groupnorm() == GN_STATUS_SUCCESS);
    CHECK(gn_pool_calls > 0);
    CHECK(app_loops == loops_before);  // (*) our loops went through the app's hook

    // The application's runtime still has its own settings.
    CHECK(halide_set_error_handler(app_error_handler) == app_error_handler);  // (*)
    CHECK(halide_set_num_threads(3) == 3);                                      // (*)
    CHECK(halide_set_custom_can_use_target_features(halide_default_can_use_target_features) ==
          halide_default_can_use_target_features);                               // (*)
    const int pool_calls = gn_pool_calls;
    CHECK(run_other(64, 64) == 0);
    CHECK(app_loops > loops_before);  // (*) the app's loops ran on our caller's pool
    CHECK(gn_pool_calls == pool_calls);

    // The other pipeline's error reaches the application's handler, not ours.
    CHECK(run_other(4, 64) != 0);
    CHECK(app_errors == 1);  // (*)
    CHECK(std::strstr(app_last_error, "in") != nullptr);

    // And ours still report through our status and message.
    CHECK(gn_forward(nullptr, nullptr, nullptr, 4, 1e-5, nullptr, nullptr, nullptr, nullptr) ==
          GN_STATUS_INVALID_ARGUMENT);
    CHECK(std::strstr(gn_last_error_message(), "x is NULL") != nullptr);
    CHECK(app_errors == 1);

    if (failures == 0) std::printf("two_runtimes: both runtimes kept their own settings\n");
    return failures == 0 ? 0 : 1;
}
