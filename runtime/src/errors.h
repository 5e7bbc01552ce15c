// Thread-local error detail and the Halide error hook.
#pragma once

#include "groupnorm/groupnorm.h"

namespace groupnorm::detail {

// Records a printf-style message for gn_last_error_message() and returns status.
gn_status fail(gn_status status, const char *format, ...) __attribute__((format(printf, 2, 3)));

// Clears the message at the start of a call.
void clear_error();

// Routes Halide's error reports into the thread-local message instead of stderr.
// Idempotent; called by every entry point that runs a kernel.
void install_halide_error_handler();

// Maps a Halide error code to a status, keeping Halide's message as the detail.
gn_status from_halide_error(int halide_code, const char *variant_name);

}  // namespace groupnorm::detail
