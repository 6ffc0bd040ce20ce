/* The kernel's own cost of a live-tail fetch response (perf/closer.py, issue 18 item 2).
 *
 *     fetch_floor FILE FD
 *
 * Accepts one connection on FD, a listening socket that closer.py passes. A request
 * starts with two 4-byte big-endian lengths, N and M: M is the whole request's size (at least 8, padding after
 * the lengths), and the answer is N bytes `sendfile`d from FILE (in the page cache),
 * wrapping at its end. The process blocks in recv between requests, so each response
 * costs what one costs the broker at the least: a wake-up, the request's receive, a
 * zero-copy send. closer.py reads this process's CPU from /proc while a paced client
 * sends requests of the broker's mean Fetch size and asks for its mean response size,
 * at its rate. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 65536

static int recv_full(int fd, char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

static int send_range(int conn, int file, off_t size, off_t *pos, size_t len) {
    while (len > 0) {
        if (*pos >= size) *pos = 0;
        size_t chunk = len < (size_t)(size - *pos) ? len : (size_t)(size - *pos);
        ssize_t n = sendfile(conn, file, pos, chunk);
        if (n <= 0) return -1;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FILE FD\n", argv[0]);
        return 2;
    }
    int file = open(argv[1], O_RDONLY), one = 1;
    struct stat st;
    if (file < 0 || fstat(file, &st) || st.st_size == 0) {
        perror("fetch_floor");
        return 1;
    }
    int conn = accept(atoi(argv[2]), NULL, NULL);
    if (conn < 0) return 1;
    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static char req[CHUNK];
    off_t pos = 0;
    while (recv_full(conn, req, 8) == 0) {
        uint32_t n = ntohl(((uint32_t *)req)[0]), m = ntohl(((uint32_t *)req)[1]);
        if (m < 8) return 1;
        uint32_t rest = m - 8;
        while (rest > 0) {
            uint32_t part = rest < CHUNK ? rest : CHUNK;
            if (recv_full(conn, req, part)) return 1;
            rest -= part;
        }
        if (send_range(conn, file, st.st_size, &pos, n)) return 1;
    }
    return 0;
}
