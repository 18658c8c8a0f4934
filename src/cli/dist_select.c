/* Communicator and GPU choice for a rank (see dist_select.h). */
#include "cli/dist_select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef R1C_NCCL
#include "dist/nccl/comm_nccl.h"
#endif

int dist_select_device(const char *backend, Err *err) {
    if (!backend || strcmp(backend, "cuda") != 0) return 0;
    DistEnv env;
    if (dist_env_read(&env, err) != 0) return -1;
    if (env.local_world <= 1) return 0;
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    char pick[256];
    if (!vis || !*vis) snprintf(pick, sizeof pick, "%d", env.local_rank);
    else {
        if (!strchr(vis, ',')) return 0; /* already one GPU: the launcher's choice */
        /* the LOCAL_RANK-th entry of the list */
        const char *p = vis;
        for (int i = 0; i < env.local_rank && p; i++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        if (!p) return err_set(err, "LOCAL_RANK=%d but CUDA_VISIBLE_DEVICES=%s lists fewer GPUs", env.local_rank, vis);
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof pick) return err_set(err, "CUDA_VISIBLE_DEVICES=%s: bad entry", vis);
        memcpy(pick, p, n), pick[n] = 0;
    }
    setenv("CUDA_VISIBLE_DEVICES", pick, 1);
    return 0;
}

int dist_select_init(const Backend *be, Comm **out, Err *err) {
    *out = NULL;
    DistEnv env;
    if (dist_env_read(&env, err) != 0) return -1;
    if (env.world <= 1) return 0;
    const char *want = getenv("R1C_DIST_BACKEND");
    if (!want || !*want) want = "auto";
    int on_gpu = be && be != backend_cpu();
    int nccl;
    if (!strcmp(want, "tcp")) nccl = 0;
    else if (!strcmp(want, "nccl")) nccl = 1;
    else if (!strcmp(want, "auto")) {
#ifdef R1C_NCCL
        nccl = on_gpu;
#else
        nccl = 0;
#endif
    } else return err_set(err, "R1C_DIST_BACKEND='%s': expected tcp, nccl or auto", want);
    if (nccl && !on_gpu) return err_set(err, "the nccl communicator needs backend=cuda (the CPU backend uses tcp)");
#ifndef R1C_NCCL
    if (nccl) return err_set(err, "this r1c was built without NCCL (no nccl.h found at build time); use --backend tcp");
#endif
    Comm *c = comm_tcp_create(&env, err);
    if (!c) return -1;
#ifdef R1C_NCCL
    if (nccl && !(c = comm_nccl_create(c, err))) return -1;
#endif
    *out = c;
    return 0;
}

void dist_select_abort(Comm *c) {
    if (!c) return;
    c->ops->abort(c);
    comm_free(c);
}
