// `groupnorm backward`: GroupNorm's gradients for .npy files through the C API: the
// statistics of x (gn_forward), then gn_backward.
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

DLDataType dtype_of(const NpyArray &a) { return {kDLFloat, (uint8_t)(a.item_size() * 8), 1}; }

CliError library_error(gn_status st) {
    return CliError(std::string(gn_status_string(st)) + ": " + gn_last_error_message());
}

}  // namespace

int backward_command(const BackwardOptions &opts) {
    if (opts.dx.empty() && opts.dweight.empty() && opts.dbias.empty()) {
        throw CliError("nothing to write: give --dx, --dweight or --dbias");
    }
    // Outputs are checked before anything is read or computed: none may name another
    // output's file, nor an input's (--dx may be --dy: dx replaces dy).
    StagedOutputs out;
    const NamedPath input{"--input", opts.input}, dy_path{"--dy", opts.dy},
        weight_path{"--weight", opts.weight};
    if (!opts.dx.empty()) out.add({"--dx", opts.dx}, {input, weight_path});
    if (!opts.dweight.empty()) out.add({"--dweight", opts.dweight}, {input, dy_path, weight_path});
    if (!opts.dbias.empty()) out.add({"--dbias", opts.dbias}, {input, dy_path, weight_path});

    NpyArray x = read_npy(opts.input, "--input");
    NpyArray dy = read_npy(opts.dy, "--dy");
    if (dy.shape != x.shape || dy.descr != x.descr) {
        throw CliError("--dy must have --input's shape and dtype");
    }
    NpyArray w;
    if (!opts.weight.empty()) w = read_npy(opts.weight, "--weight");

    // With --channels-last the files hold (N, *, C); the library sees (N, C, *).
    std::vector<int64_t> nc_shape = x.shape;
    if (opts.channels_last && nc_shape.size() > 2) {
        nc_shape.insert(nc_shape.begin() + 1, nc_shape.back());
        nc_shape.pop_back();
    }
    const int64_t N = nc_shape.size() >= 2 ? nc_shape[0] : 0;
    const int64_t C = nc_shape.size() >= 2 ? nc_shape[1] : 0;
    const int64_t G = opts.groups;
    // Statistics: float32, or float64 for float64 x (the C API's). Parameters' dtype: the
    // weight's, else the statistics' (as gn_backward decides).
    const DLDataType sdtype{kDLFloat, uint8_t(x.item_size() == 8 ? 64 : 32), 1};
    const DLDataType pdtype = opts.weight.empty() ? sdtype : dtype_of(w);
    const size_t pbytes = pdtype.bits / 8, sbytes = sdtype.bits / 8;

    support::DLTensorView xv(x.data.data(), dtype_of(x), nc_shape, opts.channels_last);
    support::DLTensorView dyv(dy.data.data(), dtype_of(x), nc_shape, opts.channels_last);
    std::unique_ptr<support::DLTensorView> wv;
    if (!opts.weight.empty()) wv = std::make_unique<support::DLTensorView>(w.data.data(), pdtype, w.shape, false);

    // The forward's statistics (N, G), sized only when G can be valid so a bad --groups
    // cannot allocate wildly before the library rejects it; a spare element keeps data non-null.
    const int64_t stats = (G > 0 && G <= C) ? N * G : 0;
    std::vector<uint8_t> mean((stats + 1) * sbytes), rstd((stats + 1) * sbytes);
    support::DLTensorView mv(mean.data(), sdtype, {N, G}, false),
        rv(rstd.data(), sdtype, {N, G}, false);
    std::vector<uint8_t> y(x.data.size() + 1);
    support::DLTensorView yv(y.data(), dtype_of(x), nc_shape, opts.channels_last);
    if (gn_status st = gn_forward(&xv.dl, wv ? &wv->dl : nullptr, nullptr, G, opts.eps, &yv.dl,
                                  &mv.dl, &rv.dl, nullptr)) {
        throw library_error(st);
    }
    std::vector<uint8_t> dx(opts.dx.empty() ? 0 : x.data.size() + 1);
    std::vector<uint8_t> dw(opts.dweight.empty() ? 0 : size_t(C) * pbytes + 1);
    std::vector<uint8_t> db(opts.dbias.empty() ? 0 : size_t(C) * pbytes + 1);
    support::DLTensorView dxv(dx.data(), dtype_of(x), nc_shape, opts.channels_last);
    support::DLTensorView dwv(dw.data(), pdtype, {C}, false), dbv(db.data(), pdtype, {C}, false);
    if (gn_status st = gn_backward(&dyv.dl, &xv.dl, &mv.dl, &rv.dl, wv ? &wv->dl : nullptr, G,
                                   dx.empty() ? nullptr : &dxv.dl, dw.empty() ? nullptr : &dwv.dl,
                                   db.empty() ? nullptr : &dbv.dl, nullptr)) {
        throw library_error(st);
    }

    // Only after success: dx in the file's own shape, then the parameter gradients.
    const std::string pdescr = float_descr(pbytes);
    if (!dx.empty()) out.write("--dx", x.descr, x.shape, dx.data(), x.data.size());
    if (!dw.empty()) out.write("--dweight", pdescr, {C}, dw.data(), size_t(C) * pbytes);
    if (!db.empty()) out.write("--dbias", pdescr, {C}, db.data(), size_t(C) * pbytes);
    out.commit();
    return 0;
}

}  // namespace groupnorm::tools
