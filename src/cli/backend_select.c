/* Backend choice for the CLI (see backend_select.h). The CUDA library is
 * linked into the r1c binary only when the build has CUDA (R1C_CUDA). */
#include "cli/backend_select.h"

#include <string.h>

#ifdef R1C_CUDA
#include "backend/cuda/backend_cuda.h"
#endif

const Backend *backend_select(const char *name, Err *err) {
    if (!name || !strcmp(name, "cpu")) return backend_cpu();
    if (strcmp(name, "cuda") != 0) {
        err_set(err, "unknown backend '%s' (cpu or cuda)", name);
        return NULL;
    }
#ifdef R1C_CUDA
    const Backend *be = backend_cuda();
    if (!be) err_set(err, "--backend cuda: no usable CUDA device (no driver or no GPU)");
    return be;
#else
    err_set(err, "--backend cuda: this r1c was built without CUDA (build with nvcc on the PATH, CUDA=1)");
    return NULL;
#endif
}

int backend_select_check(const Backend *be, Err *err) {
#ifdef R1C_CUDA
    if (be && be == backend_cuda()) return cuda_check(err);
#endif
    (void)be, (void)err;
    return 0;
}
