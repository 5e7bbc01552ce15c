/* A plain C program over the installed library, built with one compiler call from
 * `pkg-config --cflags --libs groupnorm` (shared) or the static archive plus the libraries
 * the README lists (Install.ConsumerProject). Exits non-zero on any mismatch or error. */
#include <math.h>
#include <stdio.h>

#include <groupnorm/groupnorm.h>

int main(void) {
    /* x: (N=1, C=2, L=3), one group: 1..6, mean 3.5, variance 17.5 / 6. */
    float x[6] = {1, 2, 3, 4, 5, 6}, y[6];
    int64_t shape[3] = {1, 2, 3};
    DLTensor xt = {0}, yt;
    xt.data = x;
    xt.device.device_type = kDLCPU;
    xt.ndim = 3;
    xt.dtype.code = kDLFloat;
    xt.dtype.bits = 32;
    xt.dtype.lanes = 1;
    xt.shape = shape;
    yt = xt;
    yt.data = y;
    int major = -1, minor = -1, patch = -1;
    gn_version(&major, &minor, &patch);
    if (major != GN_VERSION_MAJOR || minor != GN_VERSION_MINOR || patch != GN_VERSION_PATCH) {
        fprintf(stderr, "c_consumer: library %d.%d.%d, headers %d.%d.%d\n", major, minor, patch,
                GN_VERSION_MAJOR, GN_VERSION_MINOR, GN_VERSION_PATCH);
        return 1;
    }
    gn_status st = gn_forward(&xt, NULL, NULL, 1, 1e-5, &yt, NULL, NULL, NULL);
    const double expected = (1.0 - 3.5) / sqrt(17.5 / 6.0 + 1e-5);
    if (st != GN_STATUS_SUCCESS || !(fabs(y[0] - expected) <= 1e-5 * (fabs(expected) + 1))) {
        fprintf(stderr, "c_consumer: %s %s, y[0] = %f, expected %f\n", gn_status_string(st),
                gn_last_error_message(), y[0], expected);
        return 1;
    }
    printf("c_consumer: GroupNorm %d.%d.%d, y[0] = %.6f as expected\n", major, minor, patch, y[0]);
    return 0;
}
