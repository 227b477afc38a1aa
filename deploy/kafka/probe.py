#!/usr/bin/env python3
"""Readiness probe for the local broker (standard library only).

Sends one Kafka Metadata request (v4, no topics) to HOST:PORT and exits 0 when
the broker answers, lists itself as an alive (unfenced) broker and knows an
active controller; with --cluster-id it also checks that the answer comes from
that cluster, so a foreign broker on the same port is not mistaken for ours.
Exit 1 otherwise.  Used by kafka.sh start; handy by hand too:

    python3 deploy/kafka/probe.py 127.0.0.1 9092
"""
import argparse
import socket
import struct
import sys

API_METADATA, VERSION = 3, 4


def _string(buf, pos):
    """Read a nullable int16-length string; return (value, new_pos)."""
    (n,) = struct.unpack_from(">h", buf, pos)
    pos += 2
    if n < 0:
        return None, pos
    return buf[pos:pos + n].decode(), pos + n


def metadata(host, port, timeout):
    """Return (cluster_id, controller_id, [(node_id, host, port), ...])."""
    client_id = b"workerfile-probe"
    # Request header v1 + Metadata v4 body: empty topic array, no auto-create.
    req = struct.pack(">hhih", API_METADATA, VERSION, 1, len(client_id)) + client_id
    req += struct.pack(">ib", 0, 0)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(req)) + req)
        (size,) = struct.unpack(">i", _recv(s, 4))
        buf = _recv(s, size)
    pos = 4 + 4  # correlation id, throttle_time_ms
    (count,) = struct.unpack_from(">i", buf, pos)
    pos += 4
    brokers = []
    for _ in range(count):
        (node_id,) = struct.unpack_from(">i", buf, pos)
        bhost, pos = _string(buf, pos + 4)
        (bport,) = struct.unpack_from(">i", buf, pos)
        _rack, pos = _string(buf, pos + 4)
        brokers.append((node_id, bhost, bport))
    cluster_id, pos = _string(buf, pos)
    (controller_id,) = struct.unpack_from(">i", buf, pos)
    return cluster_id, controller_id, brokers


def _recv(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        data += chunk
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--cluster-id", help="expected cluster id (from meta.properties)")
    ap.add_argument("--timeout", type=float, default=2.0, help="socket timeout, seconds")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    try:
        cluster_id, controller_id, brokers = metadata(args.host, args.port, args.timeout)
    except (OSError, struct.error, UnicodeDecodeError) as exc:
        if not args.quiet:
            print(f"not ready: {exc}", file=sys.stderr)
        return 1
    ours = [b for b in brokers if b[2] == args.port]
    problems = []
    if args.cluster_id and cluster_id != args.cluster_id:
        problems.append(f"cluster id {cluster_id!r} != expected {args.cluster_id!r}")
    if not ours:
        problems.append(f"broker not (yet) registered/unfenced: {brokers}")
    if controller_id < 0:
        problems.append("no active controller")
    if problems:
        if not args.quiet:
            print("not ready: " + "; ".join(problems), file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"ready: cluster {cluster_id}, brokers {brokers}, controller {controller_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
