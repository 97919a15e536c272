/* cuda_stub.c: linked instead of the CUDA sources when no CUDA toolkit was found at
 * build time, so that callers need no #ifdef: there is simply no device. */
#include "../backend.h"
#include "../lp_common.h"

int lp_cuda_device_count(char *err) {
    lp_err(err, LP_EUNSUPPORTED, "this build has no CUDA backend (no toolkit at build time)");
    return 0;
}

struct lp_backend *lp_cuda_backend_create(int device, char *err) {
    (void)device;
    lp_err(err, LP_EUNSUPPORTED, "this build has no CUDA backend (no toolkit at build time)");
    return NULL;
}
