// `groupnorm run`: GroupNorm of one .npy file through the C API (with --skip: of the file
// plus a residual, the sum optionally written out).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "groupnorm/groupnorm.h"
#include "npy.h"
#include "staged_outputs.h"
#include "support/layout.h"

namespace groupnorm::tools {
namespace {

using support::DLTensorView;

DLDataType dtype_of(const NpyArray &a) {
    return {kDLFloat, (uint8_t)(a.item_size() * 8), 1};
}

// weight/bias: an optional (C,) array, float32 or x's dtype (gn_forward checks both).
struct Param {
    NpyArray array;
    std::unique_ptr<DLTensorView> view;
    Param(const std::string &path, const char *what) {
        if (path.empty()) return;
        array = read_npy(path, what);
        view = std::make_unique<DLTensorView>(array.data.data(), dtype_of(array), array.shape,
                                              false);
    }
    const DLTensor *tensor() const { return view ? &view->dl : nullptr; }
};

}  // namespace

const std::map<std::string, int> &activation_names() {
    static const std::map<std::string, int> names = {
        {"none", GN_ACTIVATION_NONE}, {"silu", GN_ACTIVATION_SILU}, {"relu", GN_ACTIVATION_RELU},
        {"gelu", GN_ACTIVATION_GELU}, {"gelu_tanh", GN_ACTIVATION_GELU_TANH}};
    return names;
}

int run_command(const RunOptions &opts) {
    // Outputs are checked before anything is read or computed: none may name another
    // output's file, nor an input's (--output may be --input: y replaces x).
    StagedOutputs out;
    const NamedPath input{"--input", opts.input}, weight_path{"--weight", opts.weight},
        bias_path{"--bias", opts.bias}, skip_path{"--skip", opts.skip},
        skip_bias_path{"--skip-bias", opts.skip_bias};
    out.add({"--output", opts.output}, {weight_path, bias_path, skip_path, skip_bias_path});
    const std::vector<NamedPath> inputs{input, weight_path, bias_path, skip_path, skip_bias_path};
    if (!opts.mean.empty()) out.add({"--mean", opts.mean}, inputs);
    if (!opts.rstd.empty()) out.add({"--rstd", opts.rstd}, inputs);
    if (!opts.sum.empty()) out.add({"--sum", opts.sum}, inputs);

    NpyArray x = read_npy(opts.input, "--input");
    const Param weight(opts.weight, "--weight"), bias(opts.bias, "--bias");
    const Param skip_bias(opts.skip_bias, "--skip-bias");

    // With --channels-last the file holds (N, *, C); the library sees (N, C, *).
    std::vector<int64_t> nc_shape = x.shape;
    if (opts.channels_last && nc_shape.size() > 2) {
        nc_shape.insert(nc_shape.begin() + 1, nc_shape.back());
        nc_shape.pop_back();
    }
    std::vector<uint8_t> y_data(x.data.size());
    DLTensorView xv(x.data.data(), dtype_of(x), nc_shape, opts.channels_last);
    DLTensorView yv(y_data.data(), dtype_of(x), nc_shape, opts.channels_last);

    // The residual: x's file shape (then in x's order), or (N, C) as given.
    NpyArray skip;
    std::unique_ptr<DLTensorView> skip_view, sum_view;
    if (!opts.skip.empty()) {
        skip = read_npy(opts.skip, "--skip");
        const bool like_x = skip.shape == x.shape;
        skip_view = std::make_unique<DLTensorView>(skip.data.data(), dtype_of(skip),
                                                   like_x ? nc_shape : skip.shape,
                                                   like_x && opts.channels_last);
    }
    std::vector<uint8_t> sum_data;
    if (!opts.sum.empty()) {
        sum_data.resize(x.data.size());
        sum_view = std::make_unique<DLTensorView>(sum_data.data(), dtype_of(x), nc_shape,
                                                  opts.channels_last);
    }

    // Statistics (N, G), only when asked for: float32, or float64 for float64 x (the C API's
    // statistics dtype). They are sized for N * G only
    // when G can be valid (G <= C), so a bad --groups cannot allocate wildly before
    // gn_forward rejects it; one spare element keeps data non-null.
    const bool want_stats = !opts.mean.empty() || !opts.rstd.empty();
    const int64_t N = nc_shape.size() >= 2 ? nc_shape[0] : 0;
    const int64_t C = nc_shape.size() >= 2 ? nc_shape[1] : 0;
    const int64_t G = opts.groups;
    const size_t stat_item = x.item_size() == 8 ? 8 : 4;
    std::vector<uint8_t> mean, rstd;
    std::unique_ptr<DLTensorView> mv, rv;
    int64_t S = 1;
    for (size_t i = 2; i < nc_shape.size(); i++) S *= nc_shape[i];
    if (want_stats && N > 0 && S == 0 && G > 0 && G <= C) {
        // Empty groups have no mean or variance; refusing here also avoids allocating
        // N * G statistics for an input that holds no data at all.
        throw CliError("--mean/--rstd: x has no spatial elements (an empty group has no "
                       "mean or variance)");
    }
    if (want_stats) {
        const int64_t count = (G > 0 && G <= C) ? N * G : 0;
        mean.resize((count + 1) * stat_item);
        rstd.resize((count + 1) * stat_item);
        const DLDataType stat{kDLFloat, uint8_t(stat_item * 8), 1};
        mv = std::make_unique<DLTensorView>(mean.data(), stat, std::vector<int64_t>{N, G}, false);
        rv = std::make_unique<DLTensorView>(rstd.data(), stat, std::vector<int64_t>{N, G}, false);
    }

    gn_config config = GN_CONFIG_INIT;
    config.activation = opts.activation;
    config.skip = skip_view ? &skip_view->dl : nullptr;
    config.skip_bias = skip_bias.tensor();
    config.sum = sum_view ? &sum_view->dl : nullptr;
    const gn_status st =
        gn_forward(&xv.dl, weight.tensor(), bias.tensor(), opts.groups, opts.eps, &yv.dl,
                   mv ? &mv->dl : nullptr, rv ? &rv->dl : nullptr, &config);
    if (st != GN_STATUS_SUCCESS) {
        throw CliError(std::string(gn_status_string(st)) + ": " + gn_last_error_message());
    }

    // Only after success: y in the file's own shape, then the statistics.
    out.write("--output", x.descr, x.shape, y_data.data(), y_data.size());
    const size_t stat_bytes = size_t(N * G) * stat_item;
    const std::string stat_descr = float_descr(stat_item);
    if (!opts.mean.empty()) out.write("--mean", stat_descr, {N, G}, mean.data(), stat_bytes);
    if (!opts.rstd.empty()) out.write("--rstd", stat_descr, {N, G}, rstd.data(), stat_bytes);
    if (!opts.sum.empty()) out.write("--sum", x.descr, x.shape, sum_data.data(), sum_data.size());
    out.commit();
    return 0;
}

}  // namespace groupnorm::tools
