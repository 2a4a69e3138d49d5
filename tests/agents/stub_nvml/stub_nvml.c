/*
 * A stub libnvidia-ml.so.1 for testing the gpusched agent without a GPU.
 *
 * The real nvidia-ml-py (module pynvml) dlopen()s "libnvidia-ml.so.1" and calls C functions by
 * name with the ABI of nvml.h; this library implements exactly the functions the agent calls,
 * with the same structs and return codes, so the agent's real code path runs unchanged.
 *
 * Configuration: the file named by $GPUSCHED_NVML_STUB_CONFIG (re-read whenever it changes, checked
 * on nvmlInit, nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex and nvmlEventSetWait), one directive
 * per line ('#' comments):
 *   profile h100x8 | a100x4mig       8 x H100 80GB HBM3 on NVSwitch / 4 x A100 40GB, MIG, NVLink mesh
 *   gpus N                           keep only the first N GPUs of the profile
 *   driver 550.54.15 | cuda 12040
 *   unsupported GPU|* FIELD          FIELD's call returns NVML_ERROR_NOT_SUPPORTED
 *   lost GPU                         every call on the GPU returns NVML_ERROR_GPU_IS_LOST
 *   hang GPU FIELD|all MS            FIELD's call sleeps MS milliseconds before answering
 *   error GPU FIELD CODE             FIELD's call returns CODE (e.g. 999 = NVML_ERROR_UNKNOWN)
 *   ecc GPU COUNT | remap GPU PENDING FAILURE | temp GPU C | power GPU MILLIWATTS
 *   util GPU GPU% MEM% | memused GPU MIB | clocks_event GPU MASK | process GPU PID MIB
 *   xid GPU CODE                     queue one XID critical-error event (delivered once)
 *   energy GPU MJ | memtemp GPU C | pcie GPU TX_KBS RX_KBS | replay GPU COUNT
 *   nvlink_data GPU TX_KIB RX_KIB    data counters of each active NVLink (nvmlDeviceGetFieldValues)
 * FIELD: name uuid pci memory utilization temperature power power_limit clocks ecc remap mig
 *        processes clocks_event compute_capability nvlink topology events index energy
 *        pcie_throughput pcie_replay field_values memory_temp nvlink_data
 * memory_temp and nvlink_data are values of nvmlDeviceGetFieldValues: as in NVML, the call succeeds
 * and the value's own nvmlReturn carries NOT_SUPPORTED (or the injected error code).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_UNKNOWN 999

#define MAX_GPUS 16
#define MAX_MIG 7
#define MAX_PROC 8
#define MAX_XID 64
#define MAX_LINKS 18

enum field {
    F_NAME, F_UUID, F_PCI, F_MEMORY, F_UTIL, F_TEMP, F_POWER, F_POWER_LIMIT, F_CLOCKS, F_ECC,
    F_REMAP, F_MIG, F_PROCESSES, F_CLOCKS_EVENT, F_CC, F_NVLINK, F_TOPOLOGY, F_EVENTS, F_INDEX,
    F_ENERGY, F_PCIE, F_REPLAY, F_FIELD_VALUES, F_MEMTEMP, F_NVLINK_DATA,
    F_COUNT, F_ALL = 31
};
static const char *FIELD_NAMES[F_COUNT] = {
    "name", "uuid", "pci", "memory", "utilization", "temperature", "power", "power_limit", "clocks",
    "ecc", "remap", "mig", "processes", "clocks_event", "compute_capability", "nvlink", "topology",
    "events", "index", "energy", "pcie_throughput", "pcie_replay", "field_values", "memory_temp",
    "nvlink_data"};

typedef struct { int index; int is_mig; int parent; } stub_device;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvmlValue_t;
typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType; /* nvmlValueType_t */
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;
#define NVML_VALUE_TYPE_UNSIGNED_INT 1
#define NVML_VALUE_TYPE_UNSIGNED_LONG_LONG 3
#define NVML_FI_DEV_MEMORY_TEMP 82
#define NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX 138
#define NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX 139
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    void *device;
    unsigned long long eventType, eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

typedef struct {
    char name[96], uuid[96];
    unsigned int bus;
    unsigned long long mem_total_mib, mem_used_mib;
    unsigned int util_gpu, util_mem, temp, power_mw, power_limit_mw, sm_clock, mem_clock;
    unsigned long long ecc_unc;
    unsigned int remap_corr, remap_unc, remap_pending, remap_failure;
    int mig_mode, mig_count;
    unsigned long long mig_mem_mib[MAX_MIG];
    char mig_profile[MAX_MIG][32];
    int nproc;
    unsigned int pid[MAX_PROC];
    unsigned long long pmem_mib[MAX_PROC];
    unsigned long long clocks_event;
    int cc_major, cc_minor;
    int nvlinks, nvswitch, numa, pcie_switch;
    int lost;
    unsigned int unsupported;
    int hang_field;
    unsigned int hang_ms;
    int error_field, error_code;
    unsigned long long registered;
    unsigned long long energy_mj, nvl_tx_kib, nvl_rx_kib;
    unsigned int mem_temp, pcie_tx_kbs, pcie_rx_kbs, pcie_replay;
} gpu_t;

static struct {
    int initialised;
    int count;
    gpu_t gpu[MAX_GPUS];
    char driver[80];
    int cuda;
    int xid_n, xid_next;
    int xid_gpu[MAX_XID];
    unsigned long long xid_code[MAX_XID];
    /* identity of the config file last read */
    int loaded;
    char path[4096];
    struct timespec mtime;
    ino_t ino;
    off_t size;
} S;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static stub_device devices[MAX_GPUS];
static stub_device mig_devices[MAX_GPUS][MAX_MIG];
static int event_set_token;

static void apply_profile(const char *profile) {
    static const unsigned int h100_bus[8] = {0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb};
    static const unsigned int a100_bus[4] = {0x01, 0x41, 0x81, 0xc1};
    int a100 = strcmp(profile, "a100x4mig") == 0;
    unsigned long long registered[MAX_GPUS]; /* event registrations belong to the session, not the config */
    for (int i = 0; i < MAX_GPUS; i++) registered[i] = S.gpu[i].registered;
    memset(S.gpu, 0, sizeof S.gpu);
    for (int i = 0; i < MAX_GPUS; i++) S.gpu[i].registered = registered[i];
    S.count = a100 ? 4 : 8;
    snprintf(S.driver, sizeof S.driver, "%s", a100 ? "535.161.08" : "550.54.15");
    S.cuda = a100 ? 12020 : 12040;
    S.xid_n = S.xid_next = 0;
    for (int i = 0; i < S.count; i++) {
        gpu_t *g = &S.gpu[i];
        g->hang_field = -1;
        g->error_field = -1;
        snprintf(g->uuid, sizeof g->uuid, "GPU-%08x-%04x-%04x-%04x-%012x", 0x5a1e0000u + (a100 ? 0x100u : 0u) + i,
                 0x1000 + i, 0x2000 + i, 0x3000 + i, 0xabc000 + i);
        if (a100) {
            snprintf(g->name, sizeof g->name, "NVIDIA A100-SXM4-40GB");
            g->bus = a100_bus[i];
            g->mem_total_mib = 40960;
            g->mem_used_mib = 0;
            g->power_limit_mw = 400000;
            g->power_mw = 61000 + 1000 * i;
            g->sm_clock = 1410;
            g->mem_clock = 1215;
            g->cc_major = 8;
            g->cc_minor = 0;
            g->nvlinks = 12; /* 4 links to each of the 3 peers */
            g->nvswitch = 0;
            g->numa = 0;
            g->pcie_switch = i / 2;
            g->mig_mode = 1;
            g->mig_count = 2;
            for (int m = 0; m < 2; m++) {
                g->mig_mem_mib[m] = 19968;
                snprintf(g->mig_profile[m], sizeof g->mig_profile[m], "3g.20gb");
            }
        } else {
            snprintf(g->name, sizeof g->name, "NVIDIA H100 80GB HBM3");
            g->bus = h100_bus[i];
            g->mem_total_mib = 81559;
            g->mem_used_mib = 4;
            g->power_limit_mw = 700000;
            g->power_mw = 70000 + 1000 * i;
            g->sm_clock = 1980;
            g->mem_clock = 2619;
            g->cc_major = 9;
            g->cc_minor = 0;
            g->nvlinks = 18;
            g->nvswitch = 1;
            g->numa = i / 4;
            g->pcie_switch = i / 2;
        }
        g->util_gpu = 0;
        g->util_mem = 0;
        g->temp = 30 + i;
        g->mem_temp = 40 + i;
        g->energy_mj = 5000000000ULL + 1000000ULL * (unsigned long long)i; /* ~1.4 kWh since boot */
        g->pcie_tx_kbs = 100 + i;
        g->pcie_rx_kbs = 200 + i;
        g->nvl_tx_kib = 0;
        g->nvl_rx_kib = 0;
        g->clocks_event = 0x1; /* GPU idle */
    }
}

static int parse_field(const char *s) {
    if (strcmp(s, "all") == 0) return F_ALL;
    for (int f = 0; f < F_COUNT; f++)
        if (strcmp(s, FIELD_NAMES[f]) == 0) return f;
    fprintf(stderr, "stub_nvml: unknown field %s\n", s);
    return -1;
}

static gpu_t *gpu_arg(int i) { return (i >= 0 && i < MAX_GPUS) ? &S.gpu[i] : NULL; }

static void load_config(const char *path) {
    apply_profile("h100x8");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return;
    char line[512], a[64], b[64];
    int i, n1, n2;
    unsigned long long u;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(line, "profile %63s", a) == 1) apply_profile(a);
        else if (sscanf(line, "gpus %d", &n1) == 1) { if (n1 >= 0 && n1 <= S.count) S.count = n1; }
        else if (sscanf(line, "driver %63s", a) == 1) snprintf(S.driver, sizeof S.driver, "%s", a);
        else if (sscanf(line, "cuda %d", &n1) == 1) S.cuda = n1;
        else if (sscanf(line, "unsupported %63s %63s", a, b) == 2) {
            int fld = parse_field(b);
            if (fld < 0 || fld == F_ALL) continue;
            for (i = 0; i < MAX_GPUS; i++)
                if (strcmp(a, "*") == 0 || atoi(a) == i) S.gpu[i].unsupported |= 1u << fld;
        } else if (sscanf(line, "lost %d", &i) == 1) { if (gpu_arg(i)) S.gpu[i].lost = 1; }
        else if (sscanf(line, "hang %d %63s %d", &i, b, &n1) == 3) {
            if (gpu_arg(i)) { S.gpu[i].hang_field = parse_field(b); S.gpu[i].hang_ms = (unsigned)n1; }
        } else if (sscanf(line, "error %d %63s %d", &i, b, &n1) == 3) {
            if (gpu_arg(i)) { S.gpu[i].error_field = parse_field(b); S.gpu[i].error_code = n1; }
        } else if (sscanf(line, "ecc %d %llu", &i, &u) == 2) { if (gpu_arg(i)) S.gpu[i].ecc_unc = u; }
        else if (sscanf(line, "remap %d %d %d", &i, &n1, &n2) == 3) {
            if (gpu_arg(i)) { S.gpu[i].remap_pending = (unsigned)n1; S.gpu[i].remap_failure = (unsigned)n2; }
        } else if (sscanf(line, "temp %d %d", &i, &n1) == 2) { if (gpu_arg(i)) S.gpu[i].temp = (unsigned)n1; }
        else if (sscanf(line, "power %d %d", &i, &n1) == 2) { if (gpu_arg(i)) S.gpu[i].power_mw = (unsigned)n1; }
        else if (sscanf(line, "util %d %d %d", &i, &n1, &n2) == 3) {
            if (gpu_arg(i)) { S.gpu[i].util_gpu = (unsigned)n1; S.gpu[i].util_mem = (unsigned)n2; }
        } else if (sscanf(line, "memused %d %llu", &i, &u) == 2) { if (gpu_arg(i)) S.gpu[i].mem_used_mib = u; }
        else if (sscanf(line, "clocks_event %d %llu", &i, &u) == 2) { if (gpu_arg(i)) S.gpu[i].clocks_event = u; }
        else if (sscanf(line, "process %d %d %llu", &i, &n1, &u) == 3) {
            gpu_t *g = gpu_arg(i);
            if (g && g->nproc < MAX_PROC) {
                g->pid[g->nproc] = (unsigned)n1;
                g->pmem_mib[g->nproc] = u;
                g->nproc++;
                g->mem_used_mib += u;
            }
        } else if (sscanf(line, "energy %d %llu", &i, &u) == 2) { if (gpu_arg(i)) S.gpu[i].energy_mj = u; }
        else if (sscanf(line, "memtemp %d %d", &i, &n1) == 2) { if (gpu_arg(i)) S.gpu[i].mem_temp = (unsigned)n1; }
        else if (sscanf(line, "pcie %d %d %d", &i, &n1, &n2) == 3) {
            if (gpu_arg(i)) { S.gpu[i].pcie_tx_kbs = (unsigned)n1; S.gpu[i].pcie_rx_kbs = (unsigned)n2; }
        } else if (sscanf(line, "replay %d %d", &i, &n1) == 2) { if (gpu_arg(i)) S.gpu[i].pcie_replay = (unsigned)n1; }
        else if (sscanf(line, "nvlink_data %d %d %d", &i, &n1, &n2) == 3) {
            if (gpu_arg(i)) { S.gpu[i].nvl_tx_kib = (unsigned)n1; S.gpu[i].nvl_rx_kib = (unsigned)n2; }
        } else if (sscanf(line, "xid %d %llu", &i, &u) == 2) {
            if (S.xid_n < MAX_XID) { S.xid_gpu[S.xid_n] = i; S.xid_code[S.xid_n] = u; S.xid_n++; }
        } else fprintf(stderr, "stub_nvml: ignoring config line: %s", line);
    }
    fclose(f);
}

/* Re-read the configuration when the file (path, inode, size or mtime) changed. Call with mu held. */
static void maybe_reload(int force) {
    const char *path = getenv("GPUSCHED_NVML_STUB_CONFIG");
    struct stat st;
    int have = path && stat(path, &st) == 0;
    if (!force && S.loaded) {
        if (!have && S.path[0] == 0) return;
        if (have && strcmp(path, S.path) == 0 && st.st_ino == S.ino && st.st_size == S.size &&
            st.st_mtim.tv_sec == S.mtime.tv_sec && st.st_mtim.tv_nsec == S.mtime.tv_nsec)
            return;
    }
    load_config(have ? path : NULL);
    S.loaded = 1;
    snprintf(S.path, sizeof S.path, "%s", have ? path : "");
    if (have) { S.ino = st.st_ino; S.size = st.st_size; S.mtime = st.st_mtim; }
}

/* Resolve a handle, apply injected faults; on NVML_SUCCESS returns with mu held. */
static nvmlReturn_t enter(void *handle, int field, gpu_t **out, stub_device **dev_out) {
    stub_device *d = (stub_device *)handle;
    if (!d) return NVML_ERROR_INVALID_ARGUMENT;
    int gi = d->is_mig ? d->parent : d->index;
    pthread_mutex_lock(&mu);
    if (!S.initialised) { pthread_mutex_unlock(&mu); return NVML_ERROR_UNINITIALIZED; }
    if (gi < 0 || gi >= S.count) { pthread_mutex_unlock(&mu); return NVML_ERROR_INVALID_ARGUMENT; }
    gpu_t *g = &S.gpu[gi];
    unsigned int hang = (g->hang_field == field || g->hang_field == F_ALL) ? g->hang_ms : 0;
    pthread_mutex_unlock(&mu);
    if (hang) usleep(hang * 1000u); /* never sleep holding the lock: other GPUs keep answering */
    pthread_mutex_lock(&mu);
    if (g->lost) { pthread_mutex_unlock(&mu); return NVML_ERROR_GPU_IS_LOST; }
    if (g->unsupported & (1u << field)) { pthread_mutex_unlock(&mu); return NVML_ERROR_NOT_SUPPORTED; }
    if (g->error_field == field || g->error_field == F_ALL) {
        int code = g->error_code;
        pthread_mutex_unlock(&mu);
        return code;
    }
    *out = g;
    if (dev_out) *dev_out = d;
    return NVML_SUCCESS;
}
#define ENTER(h, f)                                          \
    gpu_t *g;                                                \
    stub_device *dev;                                        \
    nvmlReturn_t r_ = enter((h), (f), &g, &dev);             \
    if (r_ != NVML_SUCCESS) return r_;                       \
    (void)dev;
#define LEAVE(rv)                 \
    do {                          \
        pthread_mutex_unlock(&mu); \
        return (rv);              \
    } while (0)

/* ------------------------------------------------------------------------------------ library */

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&mu);
    maybe_reload(1);
    S.initialised++;
    for (int i = 0; i < MAX_GPUS; i++) {
        devices[i].index = i;
        devices[i].is_mig = 0;
        devices[i].parent = i;
        for (int m = 0; m < MAX_MIG; m++) {
            mig_devices[i][m].index = m;
            mig_devices[i][m].is_mig = 1;
            mig_devices[i][m].parent = i;
        }
    }
    pthread_mutex_unlock(&mu);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&mu);
    if (!S.initialised) { pthread_mutex_unlock(&mu); return NVML_ERROR_UNINITIALIZED; }
    S.initialised--;
    pthread_mutex_unlock(&mu);
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    pthread_mutex_lock(&mu);
    snprintf(version, length, "%s", S.driver);
    pthread_mutex_unlock(&mu);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    pthread_mutex_lock(&mu);
    *v = S.cuda;
    pthread_mutex_unlock(&mu);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { return nvmlSystemGetCudaDriverVersion(v); }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    pthread_mutex_lock(&mu);
    if (!S.initialised) { pthread_mutex_unlock(&mu); return NVML_ERROR_UNINITIALIZED; }
    maybe_reload(0);
    *count = (unsigned)S.count;
    pthread_mutex_unlock(&mu);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device) {
    pthread_mutex_lock(&mu);
    if (!S.initialised) { pthread_mutex_unlock(&mu); return NVML_ERROR_UNINITIALIZED; }
    maybe_reload(0);
    if (index >= (unsigned)S.count) { pthread_mutex_unlock(&mu); return NVML_ERROR_INVALID_ARGUMENT; }
    int lost = S.gpu[index].lost;
    pthread_mutex_unlock(&mu);
    /* the real driver hands out a handle for a lost GPU only sometimes; later calls then fail */
    (void)lost;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetIndex(void *h, unsigned int *index) {
    ENTER(h, F_INDEX);
    *index = (unsigned)dev->index;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetName(void *h, char *name, unsigned int length) {
    ENTER(h, F_NAME);
    if (dev->is_mig)
        snprintf(name, length, "%s MIG %s", g->name, g->mig_profile[dev->index]);
    else
        snprintf(name, length, "%s", g->name);
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetUUID(void *h, char *uuid, unsigned int length) {
    ENTER(h, F_UUID);
    if (dev->is_mig)
        snprintf(uuid, length, "MIG-%08x-%04x-%04x-%04x-%012x", 0x3160000u + (unsigned)dev->parent, dev->index,
                 0x2000, 0x3000, 0xdef000 + dev->index);
    else
        snprintf(uuid, length, "%s", g->uuid);
    LEAVE(NVML_SUCCESS);
}

static void fill_pci(nvmlPciInfo_t *p, unsigned int bus) {
    memset(p, 0, sizeof *p);
    p->domain = 0;
    p->bus = bus;
    p->device = 0;
    p->pciDeviceId = 0x233010de;
    p->pciSubSystemId = 0x16c110de;
    snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "0000:%02X:00.0", bus);
    snprintf(p->busId, sizeof p->busId, "00000000:%02X:00.0", bus);
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(void *h, nvmlPciInfo_t *pci) {
    ENTER(h, F_PCI);
    fill_pci(pci, g->bus);
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *mem) {
    ENTER(h, F_MEMORY);
    unsigned long long total = g->mem_total_mib, used = g->mem_used_mib;
    if (dev->is_mig) { total = g->mig_mem_mib[dev->index]; used = 13; }
    mem->total = total << 20;
    mem->used = used << 20;
    mem->free = (total - used) << 20;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(void *h, nvmlUtilization_t *u) {
    ENTER(h, F_UTIL);
    if (g->mig_mode) LEAVE(NVML_ERROR_NOT_SUPPORTED); /* as on real A100/H100 with MIG enabled */
    u->gpu = g->util_gpu;
    u->memory = g->util_mem;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTemperature(void *h, int sensor, unsigned int *temp) {
    ENTER(h, F_TEMP);
    if (sensor != 0) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    *temp = g->temp;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(void *h, unsigned int *mw) {
    ENTER(h, F_POWER);
    *mw = g->power_mw;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *mw) {
    ENTER(h, F_POWER_LIMIT);
    *mw = g->power_limit_mw;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetClockInfo(void *h, int type, unsigned int *mhz) {
    ENTER(h, F_CLOCKS);
    if (type == 1) *mhz = g->sm_clock;        /* NVML_CLOCK_SM */
    else if (type == 2) *mhz = g->mem_clock;  /* NVML_CLOCK_MEM */
    else if (type == 0) *mhz = g->sm_clock;   /* NVML_CLOCK_GRAPHICS */
    else LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(void *h, int errorType, int counterType, unsigned long long *count) {
    ENTER(h, F_ECC);
    (void)counterType;
    *count = errorType == 1 ? g->ecc_unc : 0; /* NVML_MEMORY_ERROR_TYPE_UNCORRECTED */
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetRemappedRows(void *h, unsigned int *corr, unsigned int *unc, unsigned int *pending,
                                       unsigned int *failure) {
    ENTER(h, F_REMAP);
    *corr = g->remap_corr;
    *unc = g->remap_unc;
    *pending = g->remap_pending;
    *failure = g->remap_failure;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMigMode(void *h, unsigned int *current, unsigned int *pending) {
    ENTER(h, F_MIG);
    if (g->cc_major < 8) LEAVE(NVML_ERROR_NOT_SUPPORTED);
    *current = (unsigned)g->mig_mode;
    *pending = (unsigned)g->mig_mode;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(void *h, unsigned int *count) {
    ENTER(h, F_MIG);
    *count = g->mig_mode ? MAX_MIG : 0;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(void *h, unsigned int index, void **mig) {
    ENTER(h, F_MIG);
    if (!g->mig_mode) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    if (index >= MAX_MIG) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    if ((int)index >= g->mig_count) LEAVE(NVML_ERROR_NOT_FOUND);
    *mig = &mig_devices[dev->index][index];
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned int *count, nvmlProcessInfo_t *infos) {
    ENTER(h, F_PROCESSES);
    unsigned int n = (unsigned)g->nproc;
    if (n == 0) { *count = 0; LEAVE(NVML_SUCCESS); }
    if (infos == NULL || *count < n) { *count = n; LEAVE(NVML_ERROR_INSUFFICIENT_SIZE); }
    for (unsigned int k = 0; k < n; k++) {
        infos[k].pid = g->pid[k];
        infos[k].usedGpuMemory = g->pmem_mib[k] << 20;
        infos[k].gpuInstanceId = 0xFFFFFFFFu;
        infos[k].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = n;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(void *h, unsigned long long *reasons) {
    ENTER(h, F_CLOCKS_EVENT);
    *reasons = g->clocks_event;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
    ENTER(h, F_CC);
    *major = g->cc_major;
    *minor = g->cc_minor;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetNvLinkState(void *h, unsigned int link, unsigned int *active) {
    ENTER(h, F_NVLINK);
    if (g->nvlinks == 0) LEAVE(NVML_ERROR_NOT_SUPPORTED);
    if (link >= MAX_LINKS) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    *active = (int)link < g->nvlinks ? 1u : 0u;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(void *h, unsigned int link, nvmlPciInfo_t *pci) {
    ENTER(h, F_NVLINK);
    if ((int)link >= g->nvlinks) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    if (g->nvswitch) {
        fill_pci(pci, 0x05 + link % 4); /* one of the 4 NVSwitches of the baseboard */
        pci->pciDeviceId = 0x22a310de;
    } else {
        /* NVLink mesh: links 4k..4k+3 go to the k-th other GPU */
        int me = dev->index, k = (int)link / 4, peer = k < me ? k : k + 1;
        fill_pci(pci, S.gpu[peer].bus);
    }
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(void *h1, void *h2, int *level) {
    ENTER(h1, F_TOPOLOGY);
    stub_device *d2 = (stub_device *)h2;
    if (!d2 || d2->index >= S.count) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    gpu_t *g2 = &S.gpu[d2->index];
    if (g2->lost) LEAVE(NVML_ERROR_GPU_IS_LOST);
    if (g == g2) *level = 0;                            /* INTERNAL */
    else if (g->pcie_switch == g2->pcie_switch) *level = 20; /* MULTIPLE (PXB) */
    else if (g->numa == g2->numa) *level = 40;         /* NODE */
    else *level = 50;                                   /* SYSTEM */
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *mj) {
    ENTER(h, F_ENERGY);
    if (dev->is_mig) LEAVE(NVML_ERROR_NOT_SUPPORTED);
    *mj = g->energy_mj;
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetPcieThroughput(void *h, int counter, unsigned int *kbs) {
    ENTER(h, F_PCIE);
    if (counter == 0) *kbs = g->pcie_tx_kbs;      /* NVML_PCIE_UTIL_TX_BYTES */
    else if (counter == 1) *kbs = g->pcie_rx_kbs; /* NVML_PCIE_UTIL_RX_BYTES */
    else LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetPcieReplayCounter(void *h, unsigned int *count) {
    ENTER(h, F_REPLAY);
    *count = g->pcie_replay;
    LEAVE(NVML_SUCCESS);
}

/* One value's own fault: the call still succeeds, as NVML reports per-value errors. mu is held. */
static nvmlReturn_t value_fault(gpu_t *g, int field) {
    if (g->unsupported & (1u << field)) return NVML_ERROR_NOT_SUPPORTED;
    if (g->error_field == field) return g->error_code;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetFieldValues(void *h, int count, nvmlFieldValue_t *values) {
    ENTER(h, F_FIELD_VALUES);
    if (count < 0 || (count > 0 && values == NULL)) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int k = 0; k < count; k++) {
        nvmlFieldValue_t *v = &values[k];
        v->timestamp = (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
        v->latencyUsec = 0;
        memset(&v->value, 0, sizeof v->value);
        if (v->fieldId == NVML_FI_DEV_MEMORY_TEMP) {
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
            v->nvmlReturn = value_fault(g, F_MEMTEMP);
            v->value.uiVal = g->mem_temp;
        } else if (v->fieldId == NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX ||
                   v->fieldId == NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX) {
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
            if (v->scopeId >= MAX_LINKS) v->nvmlReturn = NVML_ERROR_INVALID_ARGUMENT;
            else if ((int)v->scopeId >= g->nvlinks || (g->unsupported & (1u << F_NVLINK)))
                v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED; /* no such link on this GPU */
            else v->nvmlReturn = value_fault(g, F_NVLINK_DATA);
            v->value.ullVal = v->fieldId == NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX ? g->nvl_tx_kib : g->nvl_rx_kib;
        } else {
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED; /* a field this stub does not model */
        }
        if (v->nvmlReturn != NVML_SUCCESS) memset(&v->value, 0, sizeof v->value);
    }
    LEAVE(NVML_SUCCESS);
}

/* ------------------------------------------------------------------------------------ events */

nvmlReturn_t nvmlEventSetCreate(void **set) {
    *set = &event_set_token;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetFree(void *set) {
    (void)set;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(void *h, unsigned long long *types) {
    ENTER(h, F_EVENTS);
    *types = 0x1 | 0x2 | 0x4 | 0x8 | 0x10; /* SBE, DBE, pstate, XID, clock */
    LEAVE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceRegisterEvents(void *h, unsigned long long types, void *set) {
    ENTER(h, F_EVENTS);
    (void)set;
    g->registered |= types;
    LEAVE(NVML_SUCCESS);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

nvmlReturn_t nvmlEventSetWait_v2(void *set, nvmlEventData_t *data, unsigned int timeoutms) {
    (void)set;
    double start = now_ms();
    for (;;) {
        pthread_mutex_lock(&mu);
        if (!S.initialised) { pthread_mutex_unlock(&mu); return NVML_ERROR_UNINITIALIZED; }
        maybe_reload(0);
        while (S.xid_next < S.xid_n) {
            int gi = S.xid_gpu[S.xid_next];
            unsigned long long code = S.xid_code[S.xid_next];
            S.xid_next++;
            if (gi < 0 || gi >= S.count || !(S.gpu[gi].registered & 0x8)) continue;
            data->device = &devices[gi];
            data->eventType = 0x8; /* nvmlEventTypeXidCriticalError */
            data->eventData = code;
            data->gpuInstanceId = 0xFFFFFFFFu;
            data->computeInstanceId = 0xFFFFFFFFu;
            pthread_mutex_unlock(&mu);
            return NVML_SUCCESS;
        }
        pthread_mutex_unlock(&mu);
        if (now_ms() - start >= (double)timeoutms) return NVML_ERROR_TIMEOUT;
        usleep(5000);
    }
}
nvmlReturn_t nvmlEventSetWait(void *set, nvmlEventData_t *data, unsigned int timeoutms) {
    return nvmlEventSetWait_v2(set, data, timeoutms);
}
