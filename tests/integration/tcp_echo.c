/* Plain TCP that knows nothing of RDMA: both ends of the test that runs TCP programs
 * over rsockets (rdma_cm.sh, under an unmodified librspreload.so).
 *
 *   tcp_echo listen ADDRESS PORT            takes one connection and sends back every
 *                                           byte it reads until the peer shuts down
 *   tcp_echo connect ADDRESS PORT [SOURCE]  sends its standard input, writes what comes
 *                                           back to its standard output, shuts its side
 *                                           down at end of input and ends at the peer's
 *
 * Both wait only in poll() with no timeout, and use only calls Debian's librspreload.so
 * (rdma-core 44) interposes: socket() with a bare SOCK_STREAM, accept() (not accept4()),
 * poll, read, write, send, shutdown. Each prints how many bytes it sent and received.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char* what) {
  fprintf(stderr, "tcp_echo: %s: %s\n", what, strerror(errno));
  return 1;
}

/* Writes all LEN bytes, waiting for POLLOUT whenever the socket's buffer is full. */
static int write_all(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, -1) < 0 && errno != EINTR) return -1;
      continue;
    }
    if (n <= 0) return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ADDRESS (IPv4 or IPv6) and PORT into SS; its length, or 0 if ADDRESS is not one. */
static socklen_t parse_address(const char* address, const char* port, struct sockaddr_storage* ss) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in* sin = (struct sockaddr_in*)ss;
  struct sockaddr_in6* sin6 = (struct sockaddr_in6*)ss;
  unsigned short p = (unsigned short)atoi(port);
  if (inet_pton(AF_INET, address, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(p);
    return sizeof *sin;
  }
  if (inet_pton(AF_INET6, address, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(p);
    return sizeof *sin6;
  }
  fprintf(stderr, "tcp_echo: not an address: %s\n", address);
  return 0;
}

static char buf[256 * 1024];

static int echo_one(const struct sockaddr_storage* ss, socklen_t sslen) {
  int ls = socket(ss->ss_family, SOCK_STREAM, 0);
  if (ls < 0) return fail("socket");
  int one = 1;
  if (setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) return fail("setsockopt");
  if (bind(ls, (const struct sockaddr*)ss, sslen) < 0) return fail("bind");
  if (listen(ls, 1) < 0) return fail("listen");
  int s = accept(ls, NULL, NULL);
  if (s < 0) return fail("accept");

  unsigned long long echoed = 0;
  for (;;) {
    struct pollfd p = {.fd = s, .events = POLLIN};
    if (poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return fail("poll");
    }
    /* POLLHUP with POLLIN: the peer is gone but its last bytes are still to be read. */
    ssize_t n = read(s, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) return fail("read");
    if (n == 0) break;
    if (write_all(s, buf, (size_t)n) < 0) return fail("write");
    echoed += (unsigned long long)n;
  }
  if (shutdown(s, SHUT_WR) < 0) return fail("shutdown");
  close(s);
  close(ls);
  printf("tcp_echo: received %llu bytes, sent %llu bytes\n", echoed, echoed);
  return 0;
}

/* Standard input to the socket and the socket to standard output, both at once: the
 * echo comes back while the input is still being sent, so neither side's buffer is
 * ever the only thing between the two. */
static int send_and_receive(const struct sockaddr_storage* ss, socklen_t sslen,
                            const struct sockaddr_storage* src, socklen_t srclen) {
  int s = socket(ss->ss_family, SOCK_STREAM, 0);
  if (s < 0) return fail("socket");
  if (srclen && bind(s, (const struct sockaddr*)src, srclen) < 0) return fail("bind");
  if (connect(s, (const struct sockaddr*)ss, sslen) < 0) return fail("connect");

  static char in[256 * 1024];
  size_t pending = 0, offset = 0;
  int input_done = 0;
  unsigned long long sent = 0, received = 0;
  for (;;) {
    struct pollfd p[2] = {{.fd = input_done || pending ? -1 : 0, .events = POLLIN},
                          {.fd = s, .events = POLLIN | (pending ? POLLOUT : 0)}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return fail("poll");
    }
    if (p[0].revents) {
      ssize_t n = read(0, in, sizeof in);
      if (n < 0 && errno != EINTR) return fail("read input");
      if (n == 0) {
        input_done = 1;
        if (shutdown(s, SHUT_WR) < 0) return fail("shutdown");
      } else if (n > 0) {
        pending = (size_t)n;
        offset = 0;
      }
    }
    if (pending && (p[1].revents & POLLOUT)) {
      /* Never a blocking write of the whole buffer: it would wait for room that only this
       * side's reading makes once the echo has filled the peer's buffer (a deadlock on
       * TCP as well). */
      ssize_t n = send(s, in + offset, pending, MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return fail("write");
      if (n > 0) {
        offset += (size_t)n;
        pending -= (size_t)n;
        sent += (unsigned long long)n;
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(s, buf, sizeof buf);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return fail("read");
      if (n == 0) break;
      if (n > 0) {
        received += (unsigned long long)n;
        for (ssize_t done = 0; done < n;) {
          ssize_t w = write(1, buf + done, (size_t)(n - done));
          if (w < 0) return fail("write output");
          done += w;
        }
      }
    }
  }
  close(s);
  if (!input_done || pending) {
    fprintf(stderr, "tcp_echo: the peer closed before the input was sent\n");
    return 1;
  }
  fprintf(stderr, "tcp_echo: sent %llu bytes, received %llu bytes\n", sent, received);
  return 0;
}

int main(int argc, char** argv) {
  struct sockaddr_storage ss, src;
  socklen_t sslen, srclen = 0;
  if (argc == 4 && strcmp(argv[1], "listen") == 0) {
    if (!(sslen = parse_address(argv[2], argv[3], &ss))) return 2;
    return echo_one(&ss, sslen);
  }
  if ((argc == 4 || argc == 5) && strcmp(argv[1], "connect") == 0) {
    if (!(sslen = parse_address(argv[2], argv[3], &ss))) return 2;
    if (argc == 5 && !(srclen = parse_address(argv[4], "0", &src))) return 2;
    return send_and_receive(&ss, sslen, &src, srclen);
  }
  fprintf(stderr,
          "usage: tcp_echo listen ADDRESS PORT\n"
          "       tcp_echo connect ADDRESS PORT [SOURCE]\n");
  return 2;
}
