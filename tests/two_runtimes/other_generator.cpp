// A second, independent Halide AOT pipeline (the "other library" of Embedding.TwoRuntimes):
// out(x) = 2 in(x), in parallel chunks, with its own Halide runtime.
#include "Halide.h"

namespace {

class OtherScale : public Halide::Generator<OtherScale> {
public:
    Input<Buffer<float, 1>> in{"in"};
    Output<Buffer<float, 1>> out{"out"};

    void generate() {
        Halide::Var x, xo, xi;
        out(x) = in(x) * 2.0f;
        out.split(x, xo, xi, 8, Halide::TailStrategy::GuardWithIf).parallel(xo);
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(OtherScale, other_scale)
