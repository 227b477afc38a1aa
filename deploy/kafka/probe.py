#!/usr/bin/env python3
"""Readiness probe for the local broker (standard library only).

Sends one Kafka Metadata request (v4, no topics) to HOST:PORT and exits 0 when
the broker answers, lists itself as an alive (unfenced) broker and knows an
active controller; with --cluster-id it also checks that the answer comes from
that cluster, so a foreign broker on the same port is not mistaken for ours.
Exit 1 otherwise.  Used by kafka.sh start; handy by hand too:

    python3 deploy/kafka/probe.py 127.0.0.1 9092

With --command-config FILE (Java client properties: security.protocol=SASL_PLAINTEXT,
sasl.mechanism=SCRAM-SHA-512|SCRAM-SHA-256|PLAIN, sasl.jaas.config=... username="u"
password="p";) it first logs in with SASL, as a secured broker requires
(deploy/security/).

With --controller it asks a dedicated KRaft controller (no client listener) on its
controller port for its ApiVersions instead, and exits 0 when it answers (kafka.sh
start of a node with KAFKA_PROCESS_ROLES=controller).
"""
import argparse
import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import sys

API_METADATA, VERSION = 3, 4
API_SASL_HANDSHAKE, API_SASL_AUTHENTICATE = 17, 36
API_VERSIONS = 18
CLIENT_ID = b"workerfile-probe"


class SaslError(Exception):
    """The broker refused the SASL login (or the client config is unusable)."""


def read_client_config(path):
    """Read a Java client properties file; return (protocol, mechanism, user, password)."""
    props = {}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#!":
                continue
            m = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)", line)
            if m:
                props[m.group(1)] = m.group(2)
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    mechanism = props.get("sasl.mechanism", "GSSAPI").upper()
    jaas = props.get("sasl.jaas.config", "")
    user = re.search(r'username\s*=\s*"([^"]*)"', jaas)
    password = re.search(r'password\s*=\s*"([^"]*)"', jaas)
    if protocol not in ("PLAINTEXT", "SASL_PLAINTEXT"):
        raise SaslError(f"security.protocol {protocol} not supported by the probe")
    if protocol == "SASL_PLAINTEXT" and not (user and password):
        raise SaslError(f"{path}: sasl.jaas.config needs username=\"...\" password=\"...\"")
    if protocol == "PLAINTEXT":
        return protocol, None, None, None
    return protocol, mechanism, user.group(1), password.group(1)


def _request(sock, api_key, version, correlation_id, body):
    """Send one request (header v1) and return the response body after the correlation id."""
    req = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID + body
    sock.sendall(struct.pack(">i", len(req)) + req)
    (size,) = struct.unpack(">i", _recv(sock, 4))
    buf = _recv(sock, size)
    return buf[4:]


def _sasl_authenticate(sock, auth_bytes, correlation_id):
    buf = _request(sock, API_SASL_AUTHENTICATE, 0, correlation_id,
                   struct.pack(">i", len(auth_bytes)) + auth_bytes)
    (error,) = struct.unpack_from(">h", buf, 0)
    message, pos = _string(buf, 2)
    (n,) = struct.unpack_from(">i", buf, pos)
    if error:
        raise SaslError(f"authentication failed (error {error}): {message}")
    return buf[pos + 4:pos + 4 + max(n, 0)]


def sasl_login(sock, mechanism, user, password):
    """SaslHandshake v1 + SaslAuthenticate v0 (PLAIN or SCRAM-SHA-256/512)."""
    buf = _request(sock, API_SASL_HANDSHAKE, 1, 101, struct.pack(">h", len(mechanism)) + mechanism.encode())
    (error,) = struct.unpack_from(">h", buf, 0)
    if error:
        raise SaslError(f"broker does not offer SASL mechanism {mechanism} (error {error})")
    if mechanism == "PLAIN":
        _sasl_authenticate(sock, b"\0" + user.encode() + b"\0" + password.encode(), 102)
        return
    algo = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}.get(mechanism)
    if algo is None:
        raise SaslError(f"SASL mechanism {mechanism} not supported by the probe")
    name = user.replace("=", "=3D").replace(",", "=2C")
    nonce = base64.b64encode(os.urandom(24)).decode()
    first_bare = f"n={name},r={nonce}"
    server_first = _sasl_authenticate(sock, ("n,," + first_bare).encode(), 102).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    if not fields.get("r", "").startswith(nonce):
        raise SaslError("SCRAM: server nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(algo, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    stored_key = hashlib.new(algo, client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, algo).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    server_final = _sasl_authenticate(sock, final.encode(), 103).decode()
    server_key = hmac.new(salted, b"Server Key", algo).digest()
    expected = base64.b64encode(hmac.new(server_key, auth_message, algo).digest()).decode()
    if server_final != f"v={expected}":
        raise SaslError(f"SCRAM: unexpected server signature: {server_final}")


def _string(buf, pos):
    """Read a nullable int16-length string; return (value, new_pos)."""
    (n,) = struct.unpack_from(">h", buf, pos)
    pos += 2
    if n < 0:
        return None, pos
    return buf[pos:pos + n].decode(), pos + n


def metadata(host, port, timeout, sasl=None):
    """Return (cluster_id, controller_id, [(node_id, host, port), ...]).

    sasl: None, or (mechanism, user, password) to log in first."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        if sasl:
            sasl_login(s, *sasl)
        # Metadata v4 body: empty topic array, no auto-create.
        buf = _request(s, API_METADATA, VERSION, 1, struct.pack(">ib", 0, 0))
    pos = 4  # throttle_time_ms
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


def api_versions(host, port, timeout):
    """The error code of an ApiVersions v0 request (0: the node answers)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        buf = _request(s, API_VERSIONS, 0, 1, b"")
    (error,) = struct.unpack_from(">h", buf, 0)
    return error


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
    ap.add_argument("--command-config", metavar="FILE",
                    help="client properties (SASL_PLAINTEXT with SCRAM-SHA-256/512 or PLAIN)")
    ap.add_argument("--controller", action="store_true",
                    help="HOST:PORT is a dedicated controller's listener: ask for its ApiVersions")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    if args.controller:
        try:
            error = api_versions(args.host, args.port, args.timeout)
        except (OSError, struct.error) as exc:
            error = exc
        if error != 0:
            if not args.quiet:
                print(f"not ready: {error if isinstance(error, Exception) else f'error {error}'}", file=sys.stderr)
            return 1
        if not args.quiet:
            print(f"ready: controller on {args.host}:{args.port}")
        return 0
    try:
        sasl = None
        if args.command_config:
            protocol, *login = read_client_config(args.command_config)
            sasl = login if protocol == "SASL_PLAINTEXT" else None
        cluster_id, controller_id, brokers = metadata(args.host, args.port, args.timeout, sasl)
    except (OSError, struct.error, UnicodeDecodeError, KeyError, ValueError, SaslError) as exc:
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
