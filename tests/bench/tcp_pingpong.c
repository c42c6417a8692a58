/* tcp_pingpong: the plain-TCP round trip that tests/bench/transport.sh sets
 * fabvault's `fabric ping` against. One connection, TCP_NODELAY, blocking
 * sockets, one message in flight: the least any request/response protocol
 * over TCP can cost. Uses no fabvault library on purpose.
 *
 *   tcp_pingpong server ADDR:PORT
 *   tcp_pingpong client ADDR:PORT [--size B] [--count N] [--warmup N] [--json]
 *
 * ADDR is an IPv4 address. The server prints "listening on ADDR:PORT" once it
 * listens, then serves one connection at a time until it is killed: the
 * client first sends its message size (u32, little-endian, 1 to 65536), then
 * every message of that size is echoed back whole. The client does --warmup
 * round trips (default 1000) that are not counted, then --count (default
 * 10000) that are, and prints min, p50, p99 and max in microseconds (the
 * same ranks as `fabvault fabric ping`: sorted[(n-1)/2], sorted[(n-1)*99/100]).
 * Exit status: 0 ok, 1 error, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG 65536

static int usage(void)
{
	fprintf(stderr,
		"usage: tcp_pingpong server ADDR:PORT\n"
		"       tcp_pingpong client ADDR:PORT [--size B] [--count N] [--warmup N] [--json]\n");
	return 2;
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	if (!colon || (size_t)(colon - s) >= sizeof host)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static long parse_num(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	return v;
}

/* Whole-buffer I/O: TCP may deliver or accept any part of a message. 0 when
 * all n bytes moved, -1 on error or end of stream. */
static int read_full(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t k = read(fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0)
			errno = 0; /* end of stream: the peer closed */
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t k = write(fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static void nodelay(int fd)
{
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		perror("tcp_pingpong: TCP_NODELAY");
}

static void serve_one(int fd)
{
	static uint8_t buf[MAX_MSG];
	uint8_t h[4];
	nodelay(fd);
	if (read_full(fd, h, 4) < 0)
		return;
	uint32_t size = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
	if (size < 1 || size > MAX_MSG) {
		fprintf(stderr, "tcp_pingpong: client asked for message size %u (1 to %d)\n", size, MAX_MSG);
		return;
	}
	while (read_full(fd, buf, size) == 0 && write_full(fd, buf, size) == 0)
		;
}

static int server(const struct sockaddr_in *sa, const char *name)
{
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(ls, (const struct sockaddr *)sa, sizeof *sa) < 0 || listen(ls, 4) < 0) {
		fprintf(stderr, "tcp_pingpong: cannot listen on %s: %s\n", name, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN); /* a client that goes away is an error of read/write */
	printf("listening on %s\n", name);
	fflush(stdout);
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "tcp_pingpong: accept on %s: %s\n", name, strerror(errno));
			return 1;
		}
		serve_one(fd);
		close(fd);
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int client(const struct sockaddr_in *sa, const char *name, long size, long count, long warmup,
		  int json)
{
	int fd = -1;
	/* the server may be a moment away from listening: retry for 5 s */
	for (int i = 0; i < 50; i++) {
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			break;
		if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
			break;
		int err = errno;
		close(fd);
		fd = -1;
		if (err != ECONNREFUSED) {
			errno = err;
			break;
		}
		usleep(100000);
	}
	if (fd < 0) {
		fprintf(stderr, "tcp_pingpong: cannot connect to %s: %s\n", name, strerror(errno));
		return 1;
	}
	nodelay(fd);
	uint8_t *out = malloc((size_t)size), *in = malloc((size_t)size);
	int64_t *rtt = malloc((size_t)count * sizeof *rtt);
	uint8_t h[4] = {(uint8_t)size, (uint8_t)(size >> 8), (uint8_t)(size >> 16), (uint8_t)(size >> 24)};
	int rc = 1;
	if (!out || !in || !rtt) {
		fprintf(stderr, "tcp_pingpong: out of memory\n");
		goto out;
	}
	for (long i = 0; i < size; i++)
		out[i] = (uint8_t)(i * 131 + 7);
	if (write_full(fd, h, 4) < 0)
		goto io_error;
	for (long k = 0; k < warmup + count; k++) {
		out[0] = (uint8_t)k; /* each echo differs from the one before */
		int64_t t0 = now_ns();
		if (write_full(fd, out, (size_t)size) < 0 || read_full(fd, in, (size_t)size) < 0)
			goto io_error;
		int64_t t1 = now_ns();
		if (memcmp(in, out, (size_t)size) != 0) {
			fprintf(stderr, "tcp_pingpong: %s echoed different bytes (round trip %ld)\n", name,
				k);
			goto out;
		}
		if (k >= warmup)
			rtt[k - warmup] = t1 - t0;
	}
	qsort(rtt, (size_t)count, sizeof *rtt, cmp_i64);
	double mn = (double)rtt[0] / 1e3, mx = (double)rtt[count - 1] / 1e3;
	long i50 = (count - 1) / 2, i99 = (count - 1) * 99 / 100; /* the ranks fabric ping uses */
	double p50 = (double)rtt[i50] / 1e3, p99 = (double)rtt[i99] / 1e3;
	if (json)
		printf("{\"addr\":\"%s\",\"size\":%ld,\"count\":%ld,\"warmup\":%ld,\"min_us\":%.2f,"
		       "\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f}\n",
		       name, size, count, warmup, mn, p50, p99, mx);
	else
		printf("%s size %ld count %ld: min %.1f us, p50 %.1f us, p99 %.1f us, max %.1f us\n", name,
		       size, count, mn, p50, p99, mx);
	rc = 0;
	goto out;
io_error:
	fprintf(stderr, "tcp_pingpong: %s: %s\n", name, errno ? strerror(errno) : "connection closed");
out:
	free(out);
	free(in);
	free(rtt);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	long size = 64, count = 10000, warmup = 1000;
	int json = 0;
	if (argc < 3 || parse_addr(argv[2], &sa) < 0)
		return usage();
	if (!strcmp(argv[1], "server"))
		return argc == 3 ? server(&sa, argv[2]) : usage();
	if (strcmp(argv[1], "client") != 0)
		return usage();
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = 1;
			continue;
		}
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "--size"))
			size = parse_num(argv[++i], 1, MAX_MSG);
		else if (!strcmp(argv[i], "--count"))
			count = parse_num(argv[++i], 1, 10000000);
		else if (!strcmp(argv[i], "--warmup"))
			warmup = parse_num(argv[++i], 0, 10000000);
		else
			return usage();
		if (size < 0 || count < 0 || warmup < 0)
			return usage();
	}
	return client(&sa, argv[2], size, count, warmup, json);
}
