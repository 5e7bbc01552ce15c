// The --dtype option's names.
#include "commands.h"

namespace groupnorm::tools {

DLDataType parse_dtype(const std::string &name) {
    if (name == "f32") return {kDLFloat, 32, 1};
    if (name == "f16") return {kDLFloat, 16, 1};
    if (name == "bf16") return {kDLBfloat, 16, 1};
    if (name == "f64") return {kDLFloat, 64, 1};
    throw CliError("unknown dtype '" + name + "' (f32, f16, bf16 or f64)");
}

}  // namespace groupnorm::tools
