// How often a syscall held by a seccomp user-notification supervisor fails with EINTR when a
// signal whose handler lacks SA_RESTART arrives: the measurement behind docs/adr/0021.
//
//   eintr CALLS KILLABLE SYNC_WAKE HOLD_US
//
// One thread installs a filter that notifies getppid (on itself only: no TSYNC), then calls it
// CALLS times; a supervisor thread made before the filter answers each with CONTINUE after
// HOLD_US microseconds; a third thread sends the caller SIGUSR1 every 20 us from CPU 1.
// KILLABLE=1 installs the filter with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19);
// SYNC_WAKE=1 sets SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6) and pins the caller and the
// supervisor to CPU 0, chaperone's placement (docs/adr/0003). Prints one line:
//   signals=N eintr=N per_1000=F
// Exit status: 0 measured, 1 a call the kernel refused (the message says which).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif

static atomic_int listener = -1;
static atomic_int done;
static atomic_long handled;
static pid_t caller;
static int hold_us;

static void on_signal(int sig) {
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void *supervise(void *arg) {
    (void)arg;
    while (atomic_load(&listener) < 0) {
    }
    int fd = atomic_load(&listener);
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    for (;;) {
        memset(&req, 0, sizeof req);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
            continue;
        if (hold_us)
            usleep(hold_us);
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    return NULL;
}

static void *flood(void *arg) {
    (void)arg;
    pin(sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0);
    while (atomic_load(&listener) < 0) {
    }
    while (!atomic_load(&done)) {
        syscall(SYS_tgkill, getpid(), caller, SIGUSR1);
        usleep(20);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s CALLS KILLABLE SYNC_WAKE HOLD_US\n", argv[0]);
        return 2;
    }
    long calls = atol(argv[1]);
    int killable = atoi(argv[2]);
    int sync_wake = atoi(argv[3]);
    hold_us = atoi(argv[4]);
    if (sync_wake)
        pin(0); // the supervisor made below inherits it
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; // no SA_RESTART
    sigaction(SIGUSR1, &sa, NULL);
    caller = gettid();
    pthread_t supervisor, flooder;
    // Made before the filter, so neither is filtered.
    pthread_create(&supervisor, NULL, supervise, NULL);
    pthread_create(&flooder, NULL, flood, NULL);

    struct sock_filter insns[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = 4, .filter = insns};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        perror("prctl(PR_SET_NO_NEW_PRIVS)");
        return 1;
    }
    unsigned long flags =
        SECCOMP_FILTER_FLAG_NEW_LISTENER | (killable ? SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV : 0);
    int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (fd < 0) {
        perror("seccomp(SECCOMP_SET_MODE_FILTER)");
        return 1;
    }
    if (sync_wake && ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0) {
        perror("ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS, SYNC_WAKE_UP)");
        return 1;
    }
    atomic_store(&listener, fd);
    long eintr = 0;
    for (long i = 0; i < calls; i++) {
        if (syscall(SYS_getppid) < 0 && errno == EINTR)
            eintr++;
    }
    atomic_store(&done, 1);
    pthread_join(flooder, NULL);
    long signals = atomic_load(&handled);
    printf("signals=%ld eintr=%ld per_1000=%.1f\n", signals, eintr,
           signals ? 1000.0 * (double)eintr / (double)signals : 0.0);
    // The supervisor is still in RECV; exiting ends it.
    return 0;
}
