/*
 * counter: the workload AutoPod's tests, benchmarks and demo run inside pods.
 *
 * It keeps state that a checkpoint must carry:
 *   - a counter in memory, incremented every tick;
 *   - MIB mebibytes of incompressible memory, filled once from a fixed seed,
 *     which "verify" recomputes; with WRITE_MIB_S, the workload keeps writing
 *     it, WRITE_MIB_S MiB per second in turn, the way a busy cache does (each
 *     word is written back with its own value, so "verify" still holds, and
 *     each page written is dirty again for a move);
 *   - TCP connections, each receiving one numbered line per tick:
 *       "<seq> <counter>\n"   seq counts from 1 on every connection
 *     A client that sees a gap or a repeat in seq has lost or duplicated data.
 * A client may send "verify\n"; the reply line is "verify ok <counter>" or
 * "verify bad <counter>". It may send "ping\n", a request answered at once
 * with "pong <counter>" (a request/response client's round trip).
 * SIGTERM ends it with status 0.
 *
 * usage: counter PORT [MIB] [TICK_MS] [WRITE_MIB_S]
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define OUTBUF (1 << 16)

struct client {
	int fd;
	unsigned long seq;
	char out[OUTBUF];
	size_t out_len;
	char in[256];
	size_t in_len;
};

static struct client clients[MAX_CLIENTS];
static unsigned long counter;
static uint64_t *memory;
static size_t words;
static size_t written; /* where the writing goes on */
static volatile sig_atomic_t stop;

static uint64_t next_word(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

static void fill(void)
{
	uint64_t state = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < words; i++)
		memory[i] = next_word(&state);
}

static int verify(void)
{
	uint64_t state = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < words; i++)
		if (memory[i] != next_word(&state))
			return 0;
	return 1;
}

/* Write back `count` words of the memory, going round it, each with its own value. */
static void rewrite(size_t count)
{
	volatile uint64_t *target = memory;
	for (size_t i = 0; i < count; i++) {
		target[written] = target[written] + 0;
		written = written + 1 < words ? written + 1 : 0;
	}
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void queue(struct client *c, const char *text)
{
	size_t len = strlen(text);
	if (c->out_len + len > OUTBUF)
		return; /* a client this far behind is gone; its buffer stops growing */
	memcpy(c->out + c->out_len, text, len);
	c->out_len += len;
}

static void drop(struct client *c)
{
	close(c->fd);
	c->fd = -1;
}

static void flush_out(struct client *c)
{
	while (c->out_len > 0) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				drop(c);
			return;
		}
		memmove(c->out, c->out + n, c->out_len - n);
		c->out_len -= n;
	}
}

static void read_in(struct client *c)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, MSG_DONTWAIT);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			drop(c);
		return;
	}
	c->in_len += n;
	c->in[c->in_len] = 0;
	char *line;
	while ((line = strchr(c->in, '\n'))) {
		*line = 0;
		if (strcmp(c->in, "verify") == 0) {
			char reply[64];
			snprintf(reply, sizeof(reply), "verify %s %lu\n", verify() ? "ok" : "bad", counter);
			queue(c, reply);
		} else if (strcmp(c->in, "ping") == 0) {
			char reply[64];
			snprintf(reply, sizeof(reply), "pong %lu\n", counter);
			queue(c, reply);
			flush_out(c);
		}
		size_t rest = c->in_len - (line + 1 - c->in);
		memmove(c->in, line + 1, rest);
		c->in_len = rest;
		c->in[rest] = 0;
	}
	if (c->in_len == sizeof(c->in) - 1)
		c->in_len = 0;
}

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PORT [MIB] [TICK_MS] [WRITE_MIB_S]\n", argv[0]);
		return 2;
	}
	int port = atoi(argv[1]);
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
	long tick = argc > 3 ? atol(argv[3]) : 10;
	size_t write_mib_s = argc > 4 ? strtoul(argv[4], NULL, 10) : 0;

	signal(SIGTERM, on_term);
	signal(SIGPIPE, SIG_IGN);
	words = mib * 1024 * 1024 / sizeof(uint64_t);
	if (words) {
		memory = malloc(words * sizeof(uint64_t));
		if (!memory) {
			perror("malloc");
			return 1;
		}
		fill();
	}

	int listener = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) || listen(listener, 16)) {
		perror("listen");
		return 1;
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	/* words written per tick; a freeze does not pile writes up, the next tick writes one tick's worth */
	size_t per_tick = words ? write_mib_s * 1024 * 1024 / sizeof(uint64_t) * tick / 1000 : 0;
	printf("counter: port %d, %zu MiB, tick %ld ms, writing %zu MiB/s\n", port, mib, tick, write_mib_s);
	fflush(stdout);

	long next_tick = now_ms() + tick;
	while (!stop) {
		struct pollfd fds[MAX_CLIENTS + 1];
		int map[MAX_CLIENTS + 1];
		int n = 0;
		fds[n].fd = listener;
		fds[n].events = POLLIN;
		map[n++] = -1;
		for (int i = 0; i < MAX_CLIENTS; i++) {
			if (clients[i].fd < 0)
				continue;
			fds[n].fd = clients[i].fd;
			fds[n].events = POLLIN | (clients[i].out_len ? POLLOUT : 0);
			map[n++] = i;
		}
		long wait = next_tick - now_ms();
		if (poll(fds, n, wait > 0 ? wait : 0) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < n; k++) {
			if (!fds[k].revents)
				continue;
			if (map[k] < 0) {
				int fd = accept(listener, NULL, NULL);
				int slot = 0;
				while (slot < MAX_CLIENTS && clients[slot].fd >= 0)
					slot++;
				if (fd >= 0 && slot < MAX_CLIENTS) {
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					clients[slot] = (struct client){.fd = fd};
				} else if (fd >= 0) {
					close(fd);
				}
				continue;
			}
			struct client *c = &clients[map[k]];
			if (fds[k].revents & POLLIN)
				read_in(c);
			if (c->fd >= 0 && (fds[k].revents & POLLOUT))
				flush_out(c);
			if (c->fd >= 0 && (fds[k].revents & (POLLERR | POLLHUP)))
				drop(c);
		}
		if (now_ms() >= next_tick) {
			/* After a long freeze, one tick, not a burst: time jumped, the stream just resumes. */
			next_tick = now_ms() + tick;
			counter++;
			rewrite(per_tick);
			for (int i = 0; i < MAX_CLIENTS; i++) {
				if (clients[i].fd < 0)
					continue;
				char line[64];
				snprintf(line, sizeof(line), "%lu %lu\n", ++clients[i].seq, counter);
				queue(&clients[i], line);
				flush_out(&clients[i]);
			}
		}
	}
	return 0;
}
