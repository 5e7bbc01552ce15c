// gn_version: the version of the library actually linked (the header's macros may differ
// when an application was built against other headers than the library it loads).
#include "groupnorm/groupnorm.h"

extern "C" void gn_version(int *major, int *minor, int *patch) {
    if (major) *major = GN_VERSION_MAJOR;
    if (minor) *minor = GN_VERSION_MINOR;
    if (patch) *patch = GN_VERSION_PATCH;
}
