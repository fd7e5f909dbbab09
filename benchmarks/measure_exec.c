/*
 * measure_exec.c: run a command and write its peak RSS and CPU to a file.
 *
 *     measure_exec OUTFILE PROGRAM [ARGS...]
 *
 * Forks, execs PROGRAM in the child, waits for it with wait4() and writes
 * "<exit status> <ru_maxrss KiB> <user s> <system s>" to OUTFILE; exits with the child's status.
 * Needed because a process started straight from the (large) Python harness inherits the
 * harness's resident size in its ru_maxrss (Linux keeps the high-water mark across exec):
 * forked from this small program instead, the tool's ru_maxrss is its own.
 * Built by benchmarks/procs.py with: gcc -O2 -o measure_exec measure_exec.c
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: measure_exec OUTFILE PROGRAM [ARGS...]\n");
        return 127;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("measure_exec: fork");
        return 127;
    }
    if (pid == 0) {
        execv(argv[2], argv + 2);
        fprintf(stderr, "measure_exec: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status = 0;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            perror("measure_exec: wait4");
            return 127;
        }
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *out = fopen(argv[1], "w");
    if (out != NULL) {
        fprintf(out, "%d %ld %.6f %.6f\n", code, usage.ru_maxrss,
                usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6,
                usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6);
        fclose(out);
    }
    return code;
}
