/* cuda_backend.cu: the CUDA side of the backend interface. At this stage it
 * enumerates devices through the CUDA runtime and answers "no GPU" cleanly;
 * the ops come with the CUDA backend work (each op held against the CPU op). */
#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <stdio.h>

extern "C" {
#include "../backend.h"
#include "../lp_common.h"
}

extern "C" int lp_cuda_device_count(char *err) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        lp_err(err, LP_EUNSUPPORTED, "no CUDA device: %s", cudaGetErrorString(rc));
        (void)cudaGetLastError(); /* clear the sticky error for later calls */
        return 0;
    }
    return n;
}

extern "C" struct lp_backend *lp_cuda_backend_create(int device, char *err) {
    int n = lp_cuda_device_count(err);
    if (n <= 0) return NULL;
    if (device < 0 || device >= n) {
        lp_err(err, LP_EINVAL, "CUDA device %d does not exist (%d found)", device, n);
        return NULL;
    }
    /* Make sure cuBLAS links and initialises on this device. */
    cublasHandle_t h;
    if (cudaSetDevice(device) != cudaSuccess || cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        lp_err(err, LP_EIO, "CUDA device %d: cannot initialise cuBLAS", device);
        return NULL;
    }
    cublasDestroy(h);
    lp_err(err, LP_EUNSUPPORTED, "CUDA device %d found, but the CUDA ops are not built yet",
           device);
    return NULL;
}
