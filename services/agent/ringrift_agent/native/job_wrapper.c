/*
 * ringrift-job-wrapper: the agent's job wrapper (ringrift_agent/wrapper.py) as a small
 * native program, with the same command line, the same behaviour and the same exit.json.
 * It is on every job's path: an interpreter's start (~10 ms of CPU and ~8 MiB for each
 * wrapper kept waiting) is what it saves. The agent uses it when it was built (the wheel's
 * build hook, hatch_build.py) and falls back to wrapper.py otherwise.
 *
 *   ringrift-job-wrapper WORK_DIR [cpu=SECONDS] [nofile=COUNT] -- ARGV...
 *   ringrift-job-wrapper --standby   # the job comes on stdin, then end of input
 *
 * Standby input: NUL-terminated fields, each led by its kind: 'W' the work directory
 * (first), 'L' a limit (name=value), 'A' an argument (in order), 'E' an environment entry
 * (KEY=VALUE). End of input without a job: nothing to do.
 *
 * The wrapper leads the job's process group. It catches SIGTERM and SIGINT before the job
 * starts and forwards them to it, so it outlives its job and reaps it: a signal that comes
 * before the job started means the job never starts. It records the exit code (negative:
 * the signal that killed it) and the CPU seconds (user + system) of the job's rusage as it
 * reaps it. A program that cannot be started is exit code 127, as a shell would say.
 * exit.json is written atomically (written, fsynced, renamed, the directory fsynced); its
 * files are opened before the job's rlimits are set on the wrapper (which the job inherits).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOT_STARTED 127
#define MAX_INPUT (16 * 1024 * 1024)

extern char **environ;

static volatile sig_atomic_t received = 0;
static volatile pid_t child = 0;

static void forward(int signum) {
    int saved = errno;
    if (!received) received = signum;
    if (child > 0) kill(child, signum);
    errno = saved;
}

struct record {
    char tmp[4096];
    char final[4096];
    int fd;
    int dir;
};

static int record_open(struct record *r, const char *work_dir) {
    if (snprintf(r->tmp, sizeof r->tmp, "%s/exit.json.tmp", work_dir) >= (int)sizeof r->tmp) return -1;
    if (snprintf(r->final, sizeof r->final, "%s/exit.json", work_dir) >= (int)sizeof r->final) return -1;
    r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (r->fd < 0) return -1;
    r->dir = open(work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return r->dir < 0 ? -1 : 0;
}

static void record_write(struct record *r, int code, double cpu_seconds) {
    struct timeval now;
    gettimeofday(&now, NULL);
    char text[256];
    int n = snprintf(text, sizeof text, "{\"exit_code\": %d, \"finished_at\": %.6f, \"cpu_seconds\": %.6f}", code,
                     (double)now.tv_sec + now.tv_usec / 1e6, cpu_seconds);
    const char *p = text;
    while (n > 0) {
        ssize_t w = write(r->fd, p, (size_t)n);
        if (w < 0) {
            if (errno == EINTR) continue;
            break;
        }
        p += w;
        n -= (int)w;
    }
    fsync(r->fd);
    close(r->fd);
    rename(r->tmp, r->final);
    fsync(r->dir); /* the new name durable too */
    close(r->dir);
}

/* One line to stderr (the job's stderr.log): what went wrong, as wrapper.py says it. */
static void say(const char *a, const char *b, const char *c, const char *d) {
    char text[4096];
    int n = snprintf(text, sizeof text, "%s%s%s%s\n", a, b, c, d);
    if (n > (int)sizeof text - 1) n = (int)sizeof text - 1;
    if (n > 0) (void)!write(2, text, (size_t)n);
}

static int set_limit(const char *spec) {
    const char *eq = strchr(spec, '=');
    if (!eq) {
        errno = EINVAL;
        return -1;
    }
    char *end;
    errno = 0;
    long long value = strtoll(eq + 1, &end, 10);
    if (errno || *end || value < 0) {
        errno = EINVAL;
        return -1;
    }
    struct rlimit limit;
    size_t name = (size_t)(eq - spec);
    if (name == 3 && strncmp(spec, "cpu", 3) == 0) {
        limit.rlim_cur = (rlim_t)value;
        limit.rlim_max = (rlim_t)value + 1; /* SIGXCPU at the limit, SIGKILL a second later */
        return setrlimit(RLIMIT_CPU, &limit);
    }
    if (name == 6 && strncmp(spec, "nofile", 6) == 0) {
        limit.rlim_cur = limit.rlim_max = (rlim_t)value;
        return setrlimit(RLIMIT_NOFILE, &limit);
    }
    errno = EINVAL;
    return -1;
}

static int run(const char *work_dir, char **limits, int nlimits, char **argv, char **envp) {
    struct record record;
    if (record_open(&record, work_dir) < 0) {
        say("cannot open exit.json in ", work_dir, ": ", strerror(errno));
        return NOT_STARTED;
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    if (received) { /* stopped before the job started: it never does */
        int signum = received;
        record_write(&record, -signum, 0.0);
        return 128 + signum;
    }
    for (int i = 0; i < nlimits; i++) {
        if (set_limit(limits[i]) < 0) {
            say("cannot set the job's limits: ", limits[i], ": ", strerror(errno));
            record_write(&record, NOT_STARTED, 0.0);
            return NOT_STARTED;
        }
    }
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    posix_spawnattr_setsigdefault(&attr, &defaults); /* the forwarded signals back to their defaults in the job */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int error = posix_spawnp(&pid, argv[0], NULL, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    if (error) {
        say("cannot start ", argv[0], ": ", strerror(error));
        record_write(&record, NOT_STARTED, 0.0);
        return NOT_STARTED;
    }
    child = pid;
    if (received) kill(pid, received); /* it came while the job was being started */
    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            record_write(&record, NOT_STARTED, 0.0);
            return NOT_STARTED;
        }
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : NOT_STARTED;
    double cpu = (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
                 usage.ru_stime.tv_usec / 1e6;
    record_write(&record, code, cpu);
    return code >= 0 ? code : 128 - code;
}

static char *read_all(int fd, size_t *size) {
    size_t cap = 65536, len = 0;
    char *data = malloc(cap + 1);
    if (!data) return NULL;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_INPUT) break;
            cap *= 2;
            char *more = realloc(data, cap + 1);
            if (!more) break;
            data = more;
        }
        ssize_t n = read(fd, data + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    data[len] = 0;
    *size = len;
    return data;
}

static int redirect(int target, const char *work_dir, const char *name) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", work_dir, name) >= (int)sizeof path) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return -1;
    if (dup2(fd, target) < 0) return -1;
    close(fd);
    return 0;
}

static int standby(void) {
    size_t size;
    char *data = read_all(0, &size);
    if (!data || size == 0) return 0;
    /* Count the fields to size the arrays (each NUL ends one). */
    int fields = 0;
    for (size_t i = 0; i < size; i++) fields += data[i] == 0;
    char **argv = calloc((size_t)fields + 1, sizeof *argv);
    char **envp = calloc((size_t)fields + 1, sizeof *envp);
    char **limits = calloc((size_t)fields + 1, sizeof *limits);
    if (!argv || !envp || !limits) return NOT_STARTED;
    const char *work_dir = NULL;
    int nargv = 0, nenv = 0, nlimits = 0;
    for (size_t i = 0; i < size;) {
        char *field = data + i;
        size_t len = strlen(field);
        if (i + len >= size) break; /* not NUL-terminated: ignored */
        switch (field[0]) {
        case 'W': work_dir = field + 1; break;
        case 'A': argv[nargv++] = field + 1; break;
        case 'E': envp[nenv++] = field + 1; break;
        case 'L': limits[nlimits++] = field + 1; break;
        default: break;
        }
        i += len + 1;
    }
    if (!work_dir || nargv == 0) {
        say("ringrift-job-wrapper: ", "the standby input names no work directory or no program", "", "");
        return NOT_STARTED;
    }
    if (chdir(work_dir) < 0) return NOT_STARTED;
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) {
        dup2(null, 0);
        close(null);
    }
    if (redirect(1, work_dir, "stdout.log") < 0 || redirect(2, work_dir, "stderr.log") < 0) return NOT_STARTED;
    /* posix_spawnp finds the program on the standby's own PATH (the agent's), as the
       job's own PATH is. */
    return run(work_dir, limits, nlimits, argv, envp);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--standby") == 0) return standby();
    int separator = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            separator = i;
            break;
        }
    }
    if (argc < 2 || !separator || separator + 1 >= argc) {
        say("usage: ringrift-job-wrapper WORK_DIR [cpu=SECONDS] [nofile=COUNT] -- ARGV...", "", "", "");
        say("       ringrift-job-wrapper --standby", "", "", "");
        return 2;
    }
    return run(argv[1], argv + 2, separator - 2, argv + separator + 1, environ);
}
