// Descriptors a client hands the daemon, and the daemon's I/O on them: none of it may ever
// block vrdmad, whatever the client does to its copy (issue 12, item 4).
//
// Event channels (a context's async events, a CQ's completion channel) are the daemon's
// end of an AF_UNIX SOCK_SEQPACKET socketpair the client made; the client reads the other
// end (ibv_get_async_event, ibv_get_cq_event). Not a pipe: every write to a pipe takes the
// pipe's mutex, and a client that splices from its read end into a socket it never reads
// holds that mutex for as long as it likes, so even pwritev2(RWF_NOWAIT) or O_NONBLOCK
// writers sleep uninterruptibly (seen on Linux 6.18; Linux 6.1 has no RWF_NOWAIT on pipes
// at all, it came with FMODE_NOWAIT for pipes in 6.4). A send to a UNIX socket takes no
// lock its peer can hold, and MSG_DONTWAIT makes it non-blocking per call, whatever
// O_NONBLOCK the client sets on the shared open file description.
#pragma once

#include <cstddef>

namespace vrdma::vdev {

// 0 when `fd` is what a client must pass as an event channel: a connected AF_UNIX
// SOCK_SEQPACKET socket (fstat on the sockets' file system, learned from a socket this
// process makes) whose peer is unnamed, i.e. the other end of a socketpair, not a
// connection to some named service. EINVAL for anything else: a pipe, a named FIFO (on
// FUSE or anywhere), a regular file, an O_PATH descriptor of a socket file.
int CheckEventChannel(int fd);

// Sends one event record (ib_uverbs_async_event_desc, ib_uverbs_comp_event_desc) on an
// event channel: never blocks, never raises SIGPIPE. False when the record was not sent:
// the channel is full (the client does not read: it loses this event, nothing else),
// shut down, or gone.
bool SendEventRecord(int fd, const void* record, size_t len);

// Empties a doorbell eventfd without ever blocking: preadv2(RWF_NOWAIT), so a client that
// cleared O_NONBLOCK on the shared description, or read the counter first, changes
// nothing. Returns false when the kernel cannot read it without blocking (no RWF_NOWAIT
// for eventfds before Linux 5.8): then it does not read at all.
bool DrainEventfd(int fd);

}  // namespace vrdma::vdev
