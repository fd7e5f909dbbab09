/*
 * loopback_bind.c: LD_PRELOAD shim that keeps the test lab's DICOM peers on loopback.
 *
 * Orthanc 1.10 and DCMTK 3.6.7 servers bind the wildcard address and cannot be told otherwise.
 * Loaded with LD_PRELOAD, this library
 *   - turns bind(INADDR_ANY) into bind(127.0.0.1) and bind(in6addr_any) into bind(::1);
 *   - refuses connect()/sendto()/sendmsg() towards any address outside 127.0.0.0/8 and ::1
 *     (errno ENETUNREACH), so that a peer's own code cannot send traffic anywhere else (no
 *     C-MOVE or HTTP to a stray host). glibc's resolver calls its internal __connect and is not
 *     covered: the lab avoids name lookups instead (numeric addresses, dcmqrscp -dhl);
 *   - if LOOPBACK_BIND_PARENT is set to a pid, asks the kernel to SIGKILL the process when
 *     its parent dies (PR_SET_PDEATHSIG), so a killed test run leaves no server behind.
 *
 * Built by tests/lab/peers.py with: gcc -shared -fPIC -O2 -o loopback_bind.so loopback_bind.c -ldl
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

static void *next_symbol(const char *name)
{
    void *sym = dlsym(RTLD_NEXT, name);
    if (sym == NULL) {
        fprintf(stderr, "loopback_bind: cannot resolve %s\n", name);
        abort();
    }
    return sym;
}

/* 1 if the destination is loopback (or not an IP address at all, e.g. AF_UNIX), else 0. */
static int destination_allowed(const struct sockaddr *addr, socklen_t len)
{
    if (addr == NULL)
        return 1;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
        return 0;
    }
    if (addr->sa_family == AF_UNSPEC)
        return 1; /* connect(AF_UNSPEC) dissolves a UDP association */
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)
        return 0; /* truncated address: refuse rather than guess */
    return 1;
}

static void report_blocked(const char *what, const struct sockaddr *addr)
{
    char text[INET6_ADDRSTRLEN] = "?";
    if (addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, text, sizeof text);
    else if (addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, text, sizeof text);
    fprintf(stderr, "loopback_bind: blocked %s to non-loopback address %s\n", what, text);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static bind_fn real_bind;
    if (real_bind == NULL)
        real_bind = (bind_fn)next_symbol("bind");

    if (addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in in4;
        memcpy(&in4, addr, sizeof in4);
        if (in4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&in4, sizeof in4);
        }
    } else if (addr != NULL && addr->sa_family == AF_INET6
               && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof in6);
        if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr)) {
            in6.sin6_addr = in6addr_loopback;
            return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
        }
    }
    return real_bind(fd, addr, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    static connect_fn real_connect;
    if (real_connect == NULL)
        real_connect = (connect_fn)next_symbol("connect");
    if (!destination_allowed(addr, len)) {
        report_blocked("connect", addr);
        errno = ENETUNREACH;
        return -1;
    }
    return real_connect(fd, addr, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
               socklen_t len)
{
    static sendto_fn real_sendto;
    if (real_sendto == NULL)
        real_sendto = (sendto_fn)next_symbol("sendto");
    if (!destination_allowed(addr, len)) {
        report_blocked("sendto", addr);
        errno = ENETUNREACH;
        return -1;
    }
    return real_sendto(fd, buf, n, flags, addr, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    static sendmsg_fn real_sendmsg;
    if (real_sendmsg == NULL)
        real_sendmsg = (sendmsg_fn)next_symbol("sendmsg");
    if (msg != NULL && !destination_allowed((const struct sockaddr *)msg->msg_name, msg->msg_namelen)) {
        report_blocked("sendmsg", (const struct sockaddr *)msg->msg_name);
        errno = ENETUNREACH;
        return -1;
    }
    return real_sendmsg(fd, msg, flags);
}

__attribute__((constructor)) static void loopback_bind_init(void)
{
    const char *parent = getenv("LOOPBACK_BIND_PARENT");
    if (parent == NULL || *parent == '\0')
        return;
    pid_t expected = (pid_t)strtol(parent, NULL, 10);
    /* Only the process started by the test lab: not programs it may exec later. */
    unsetenv("LOOPBACK_BIND_PARENT");
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != expected)
        _exit(70); /* the parent is already gone */
}
