/* Reads a process's place in the job from the environment (see comm.h):
 * the variables torchrun sets, with mpirun's as a fallback for the ranks.
 * Values come from outside, so each is parsed strictly and checked. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"

/* -1: unset; -2: malformed (err set) */
static long env_int(const char *name, long lo, long hi, Err *err) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        err_set(err, "environment: %s='%s' is not an integer in [%ld, %ld]", name, s, lo, hi);
        return -2;
    }
    return v;
}

static long first_of(const char *const *names, int n, long lo, long hi, Err *err) {
    for (int i = 0; i < n; i++) {
        long v = env_int(names[i], lo, hi, err);
        if (v != -1) return v;
    }
    return -1;
}

int dist_env_read(DistEnv *e, Err *err) {
    memset(e, 0, sizeof *e);
    static const char *const RANK[] = {"RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"};
    static const char *const WORLD[] = {"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    static const char *const LRANK[] = {"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"};
    static const char *const LWORLD[] = {"LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"};
    const int MAXW = 1 << 16;
    long world = first_of(WORLD, 3, 1, MAXW, err);
    long rank = first_of(RANK, 3, 0, MAXW - 1, err);
    long lrank = first_of(LRANK, 3, 0, MAXW - 1, err);
    long lworld = first_of(LWORLD, 3, 1, MAXW, err);
    long port = env_int("MASTER_PORT", 1, 65535, err);
    long tmo = env_int("R1C_DIST_TIMEOUT", 1, 7 * 24 * 3600, err);
    if (world == -2 || rank == -2 || lrank == -2 || lworld == -2 || port == -2 || tmo == -2) return -1;
    e->timeout_ms = (int)((tmo > 0 ? tmo : 300) * 1000 > INT_MAX ? INT_MAX : (tmo > 0 ? tmo : 300) * 1000);
    if (world <= 1) { /* a job of one: nothing else matters */
        if (rank > 0) return err_set(err, "environment: RANK=%ld but WORLD_SIZE is %ld", rank, world < 0 ? 1 : world);
        e->world = e->local_world = 1;
        return 0;
    }
    if (rank < 0) return err_set(err, "environment: WORLD_SIZE=%ld but RANK is not set", world);
    if (rank >= world) return err_set(err, "environment: RANK=%ld is not below WORLD_SIZE=%ld", rank, world);
    e->world = (int)world, e->rank = (int)rank;
    e->local_rank = lrank >= 0 ? (int)lrank : (int)rank;
    e->local_world = lworld >= 0 ? (int)lworld : (int)world;
    if (e->local_rank >= e->local_world)
        return err_set(err, "environment: LOCAL_RANK=%d is not below LOCAL_WORLD_SIZE=%d", e->local_rank, e->local_world);
    const char *addr = getenv("MASTER_ADDR");
    if (!addr || !*addr) addr = "127.0.0.1";
    if (strlen(addr) >= sizeof e->master_addr) return err_set(err, "environment: MASTER_ADDR is longer than 255 bytes");
    snprintf(e->master_addr, sizeof e->master_addr, "%s", addr);
    if (port < 0) return err_set(err, "environment: WORLD_SIZE=%d needs MASTER_PORT (rank 0 listens there)", e->world);
    e->master_port = (int)port;
    return 0;
}
