#include "errors.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "HalideRuntime.h"

namespace groupnorm::detail {
namespace {

thread_local char last_message[1024] = "";
thread_local char halide_message[1024] = "";

void on_halide_error(void * /*user_context*/, const char *message) {
    std::snprintf(halide_message, sizeof(halide_message), "%s", message ? message : "");
    // Halide messages end with a newline; the API's messages do not.
    size_t len = std::strlen(halide_message);
    while (len > 0 && halide_message[len - 1] == '\n') halide_message[--len] = '\0';
}

}  // namespace

gn_status fail(gn_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    std::vsnprintf(last_message, sizeof(last_message), format, args);
    va_end(args);
    return status;
}

void clear_error() {
    last_message[0] = '\0';
    halide_message[0] = '\0';
}

void install_halide_error_handler() {
    static std::once_flag once;
    std::call_once(once, [] { halide_set_error_handler(on_halide_error); });
}

gn_status from_halide_error(int halide_code, const char *variant_name) {
    const char *detail = halide_message[0] ? halide_message : "(reported on a worker thread)";
    if (halide_code == halide_error_code_out_of_memory) {
        return fail(GN_STATUS_OUT_OF_MEMORY, "%s: out of memory: %s", variant_name, detail);
    }
    return fail(GN_STATUS_INTERNAL_ERROR, "%s failed with Halide error %d: %s", variant_name,
                halide_code, detail);
}

}  // namespace groupnorm::detail

extern "C" const char *gn_status_string(gn_status status) {
    // A C caller may pass any int; in C++ loading an enum outside its range (0..7 here) is
    // undefined (UBSan: "not a valid value for type 'gn_status'"), so read it as an int.
    int code;
    static_assert(sizeof(code) == sizeof(status), "gn_status is an int");
    std::memcpy(&code, &status, sizeof(code));
    switch (code) {
    case GN_STATUS_SUCCESS: return "GN_STATUS_SUCCESS";
    case GN_STATUS_INVALID_ARGUMENT: return "GN_STATUS_INVALID_ARGUMENT";
    case GN_STATUS_UNSUPPORTED: return "GN_STATUS_UNSUPPORTED";
    case GN_STATUS_DEVICE_UNAVAILABLE: return "GN_STATUS_DEVICE_UNAVAILABLE";
    case GN_STATUS_OUT_OF_MEMORY: return "GN_STATUS_OUT_OF_MEMORY";
    case GN_STATUS_INTERNAL_ERROR: return "GN_STATUS_INTERNAL_ERROR";
    }
    return "GN_STATUS_UNKNOWN";
}

extern "C" const char *gn_last_error_message(void) {
    return groupnorm::detail::last_message;
}
