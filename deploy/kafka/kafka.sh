#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) for
# development, tests and CI.  The broker's jars come from Maven (pom.xml here),
# no Docker and no Kafka tarball needed.  Also one node of a local cluster
# (KAFKA_NODE_ID, KAFKA_PROCESS_ROLES, KAFKA_QUORUM_VOTERS, KAFKA_CLUSTER_ID,
# KAFKA_REPLICATION below; streams/local_cluster.py starts 3 brokers that way).
#
#   deploy/kafka/kafka.sh fetch    # mvn once: jars -> deploy/kafka/.lib (idempotent)
#   deploy/kafka/kafka.sh start    # format on first use, launch, wait until it answers
#   deploy/kafka/kafka.sh status   # "running ..." (exit 0) or "stopped" (exit 1)
#   deploy/kafka/kafka.sh stop     # SIGTERM, SIGKILL after a timeout; ok if not running
#   deploy/kafka/kafka.sh kill     # SIGKILL at once, like a crash; ok if not running
#   deploy/kafka/kafka.sh clean    # stop and delete the data dir
#
# Environment (defaults):
#   KAFKA_PORT=9092               client listener, bound to 127.0.0.1 only
#   KAFKA_CONTROLLER_PORT=9093    KRaft controller listener, 127.0.0.1 only
#   KAFKA_DATA_DIR=deploy/kafka/.data   server.properties, kafka.pid, kafka.log, logs/
#   KAFKA_HEAP="-Xmx512m -Xms256m"
#   KAFKA_JVM_OPTS                GC/JIT flags (see below)
#   KAFKA_START_TIMEOUT=60        seconds to wait for readiness
#   KAFKA_STOP_TIMEOUT=30         seconds between SIGTERM and SIGKILL
#   KAFKA_EXTRA_CONFIG            extra server.properties lines (newline separated)
#   KAFKA_OWNER_PID               if set, the broker is stopped when that process exits
#   KAFKA_LISTENER_PROTOCOL=PLAINTEXT    security protocol (and listener name) of the
#                                 client listener, e.g. SASL_PLAINTEXT (deploy/security/)
#   KAFKA_CONTROLLER_PROTOCOL=PLAINTEXT  security protocol of the controller listener
#   KAFKA_ADD_SCRAM               SCRAM credentials created when the storage is formatted,
#                                 one per line, e.g. SCRAM-SHA-512=[name=admin,password=s]
#   KAFKA_CLIENT_CONFIG           client properties file (security.protocol, sasl.mechanism,
#                                 sasl.jaas.config) the readiness probe logs in with
#   KAFKA_LIB_DIR=deploy/kafka/.lib, JAVA=java (or $JAVA_HOME/bin/java), PYTHON=python3
#
# One node of a cluster (the defaults make the single node above):
#   KAFKA_NODE_ID=1               node.id, unique and stable in the cluster
#   KAFKA_PROCESS_ROLES=broker,controller   or broker, or controller: a dedicated
#                                 controller has no client listener (KAFKA_PORT unused),
#                                 a broker-only node no controller listener
#   KAFKA_QUORUM_VOTERS           controller.quorum.voters: id@127.0.0.1:port,... of every
#                                 controller (default: this node on KAFKA_CONTROLLER_PORT)
#   KAFKA_CLUSTER_ID              the id every node of the cluster formats its storage
#                                 with (default: a random one, right for a single node)
#   KAFKA_REPLICATION=1           default.replication.factor, and that of the internal
#                                 topics (__consumer_offsets, __transaction_state)
#   KAFKA_MIN_ISR=1               min.insync.replicas, transaction.state.log.min.isr
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$HERE/.data}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"
# Same GC/JIT flags as Kafka's own kafka-run-class.sh.
DEFAULT_JVM_OPTS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
-XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-$DEFAULT_JVM_OPTS}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$HERE/.lib}"
KAFKA_LISTENER_PROTOCOL="${KAFKA_LISTENER_PROTOCOL:-PLAINTEXT}"
KAFKA_CONTROLLER_PROTOCOL="${KAFKA_CONTROLLER_PROTOCOL:-PLAINTEXT}"
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_PROCESS_ROLES="${KAFKA_PROCESS_ROLES:-broker,controller}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-$KAFKA_NODE_ID@127.0.0.1:$KAFKA_CONTROLLER_PORT}"
KAFKA_REPLICATION="${KAFKA_REPLICATION:-1}"
KAFKA_MIN_ISR="${KAFKA_MIN_ISR:-1}"
case "$KAFKA_PROCESS_ROLES" in
  broker,controller | controller,broker) IS_BROKER=1 IS_CONTROLLER=1 ;;
  broker) IS_BROKER=1 IS_CONTROLLER= ;;
  controller) IS_BROKER= IS_CONTROLLER=1 ;;
  *) echo "kafka.sh: KAFKA_PROCESS_ROLES must be broker,controller or broker or controller" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
if [[ -z "${JAVA:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
fi

# Absolute data dir (relative paths are taken from the caller's cwd).
[[ "$KAFKA_DATA_DIR" = /* ]] || KAFKA_DATA_DIR="$PWD/$KAFKA_DATA_DIR"
PROPS="$KAFKA_DATA_DIR/server.properties"
PIDFILE="$KAFKA_DATA_DIR/kafka.pid"
LOGFILE="$KAFKA_DATA_DIR/kafka.log"
LOG_DIRS="$KAFKA_DATA_DIR/logs"         # topic data + KRaft metadata log
LOG4J="-Dlog4j.configuration=file:$HERE/log4j.properties"

say() { echo "kafka.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------- fetch
# Copy the broker's runtime jars into $KAFKA_LIB_DIR, once per pom.xml content.
# A lock makes concurrent callers (parallel tests) wait instead of racing.
fetch() {
  local want stamp="$KAFKA_LIB_DIR/.pom.sha256" tmp
  want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  exec 9>"$KAFKA_LIB_DIR.lock"
  flock 9
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then exec 9>&-; return 0; fi
  command -v mvn >/dev/null || die "mvn not found (Maven is needed once to fetch the Kafka jars)"
  say "fetching Kafka jars with Maven into $KAFKA_LIB_DIR"
  tmp="$KAFKA_LIB_DIR.tmp.$$"
  rm -rf "$tmp"
  # Output kept only for errors (mvn -q still prints colour codes).
  if ! mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "maven fetch failed"
  fi
  rm -f "$tmp.log"
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$KAFKA_LIB_DIR"
  mv "$tmp" "$KAFKA_LIB_DIR"
  exec 9>&-
}

# ---------------------------------------------------------------- helpers
# Print the broker pid if it is alive (not a zombie) and really our kafka.Kafka.
running_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

# Process state letter from /proc (R, S, D, Z, ...); empty if there is no such pid.
proc_state() { sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true; }

# True if the pid exists and is not a zombie (an exited child not yet reaped).
alive() { local s; s="$(proc_state "$1")"; [[ -n "$s" && "$s" != "Z" ]]; }

# A base64url UUID like `kafka-storage.sh random-uuid` makes (no JVM needed).
random_cluster_id() {
  "$PYTHON" -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s); break'
}

# Fail fast if a port is taken (Kafka itself would only notice after ~10 s).
check_port_free() {
  "$PYTHON" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    sys.exit(f"kafka.sh: 127.0.0.1:{sys.argv[1]} not usable: {e.strerror}")' "$1"
}

# What went wrong in this start: ERROR lines first, then the last lines.
show_failure() {
  local section
  section="$(tail -n +"$1" "$LOGFILE")"
  grep -m 12 -E ' (ERROR|FATAL) |Exception' <<<"$section" >&2 || true
  echo "--- last lines of $LOGFILE:" >&2
  tail -n 15 <<<"$section" >&2
}

cluster_id() { sed -n 's/^cluster.id=//p' "$LOG_DIRS/meta.properties" 2>/dev/null; }

write_properties() {
  local listeners=() protocols="CONTROLLER:$KAFKA_CONTROLLER_PROTOCOL"
  if [[ -n "$IS_BROKER" ]]; then
    listeners+=("$KAFKA_LISTENER_PROTOCOL://127.0.0.1:$KAFKA_PORT")
    protocols+=",$KAFKA_LISTENER_PROTOCOL:$KAFKA_LISTENER_PROTOCOL"
  fi
  if [[ -n "$IS_CONTROLLER" ]]; then listeners+=("CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"); fi
  cat >"$PROPS" <<EOF
# Written by deploy/kafka/kafka.sh on every start; edits here are overwritten
# (use KAFKA_EXTRA_CONFIG instead).
process.roles=$KAFKA_PROCESS_ROLES
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_QUORUM_VOTERS
controller.listener.names=CONTROLLER
listeners=$(IFS=,; echo "${listeners[*]}")
listener.security.protocol.map=$protocols
log.dirs=$LOG_DIRS
EOF
  if [[ -n "$IS_BROKER" ]]; then
    cat >>"$PROPS" <<EOF
advertised.listeners=$KAFKA_LISTENER_PROTOCOL://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=$KAFKA_LISTENER_PROTOCOL
EOF
  fi
  # The cluster-wide defaults go to controllers too: in KRaft the controller fills
  # them in when it creates a topic.
  cat >>"$PROPS" <<EOF

# A single node: every replication factor / ISR is 1 (a cluster: KAFKA_REPLICATION,
# KAFKA_MIN_ISR).
num.partitions=4
default.replication.factor=$KAFKA_REPLICATION
min.insync.replicas=$KAFKA_MIN_ISR
offsets.topic.replication.factor=$KAFKA_REPLICATION
transaction.state.log.replication.factor=$KAFKA_REPLICATION
transaction.state.log.min.isr=$KAFKA_MIN_ISR
# Never elect a replica that may miss acknowledged writes (Kafka's default, said here).
unclean.leader.election.enable=false
# Fewer internal partitions than the default 50: faster first group join /
# first transactional producer on a small machine.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4

# Tests and dev: no rebalance delay, topics only from deploy/topics.toml.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false

# Small machine: fewer threads, and a 16 MiB (not 128 MiB) compaction buffer
# so the heap can stay small.
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=16777216
EOF
  if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
    printf '\n# KAFKA_EXTRA_CONFIG\n%s\n' "$KAFKA_EXTRA_CONFIG" >>"$PROPS"
  fi
}

# Format the KRaft storage once per data dir (KAFKA_CLUSTER_ID, or a random cluster id).
format_storage() {
  local cid line scram=()
  cid="${KAFKA_CLUSTER_ID:-$(random_cluster_id)}"
  while IFS= read -r line; do
    if [[ -n "$line" ]]; then scram+=(--add-scram "$line"); fi
  done <<<"${KAFKA_ADD_SCRAM:-}"
  say "formatting KRaft storage in $LOG_DIRS (cluster id $cid)"
  # Short-lived JVM: C1 only + serial GC start faster.
  "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "$LOG4J" -cp "$KAFKA_LIB_DIR/*" \
    kafka.tools.StorageTool format --ignore-formatted -t "$cid" -c "$PROPS" "${scram[@]}" >>"$LOGFILE" 2>&1 \
    || { tail -n 30 "$LOGFILE" >&2; die "storage format failed"; }
}

# ---------------------------------------------------------------- commands
start() {
  local pid cid deadline first_line
  if pid="$(running_pid)"; then
    say "already running (pid $pid), $(what) $(bootstrap)"
    return 0
  fi
  if [[ -n "$IS_BROKER" ]]; then check_port_free "$KAFKA_PORT"; fi
  if [[ -n "$IS_CONTROLLER" ]]; then check_port_free "$KAFKA_CONTROLLER_PORT"; fi
  fetch
  mkdir -p "$KAFKA_DATA_DIR"
  write_properties
  [[ -f "$LOG_DIRS/meta.properties" ]] || format_storage
  cid="$(cluster_id)"

  # Own session (setsid) so terminal/test-runner signals do not hit the broker;
  # stdin/stdout/stderr detached so callers capturing output do not hang.
  rm -f "$PIDFILE"
  echo "=== $(date -Is) start of node $KAFKA_NODE_ID ($KAFKA_PROCESS_ROLES) on $(bootstrap)" >>"$LOGFILE"
  first_line=$(($(wc -l <"$LOGFILE") + 1))
  # shellcheck disable=SC2086,SC2016  # HEAP/JVM_OPTS are word lists; $$ is the inner shell's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    "$JAVA" $KAFKA_HEAP $KAFKA_JVM_OPTS "$LOG4J" "-Dkafka.logs.dir=$KAFKA_DATA_DIR" \
    -cp "$KAFKA_LIB_DIR/*" kafka.Kafka "$PROPS" </dev/null >>"$LOGFILE" 2>&1 &

  # Wait until the broker answers a Metadata request as an unfenced broker.
  deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until pid="$(running_pid)"; do
    ((SECONDS < deadline)) || break
    sleep 0.1
  done
  while true; do
    if ! pid="$(running_pid)"; then
      show_failure "$first_line"
      die "broker exited during startup (log: $LOGFILE)"
    fi
    if [[ -z "$IS_BROKER" ]]; then
      if "$PYTHON" "$HERE/probe.py" -q --controller 127.0.0.1 "$KAFKA_CONTROLLER_PORT"; then break; fi
    elif "$PYTHON" "$HERE/probe.py" -q --cluster-id "$cid" \
        ${KAFKA_CLIENT_CONFIG:+--command-config "$KAFKA_CLIENT_CONFIG"} 127.0.0.1 "$KAFKA_PORT"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      show_failure "$first_line"
      say "broker not ready after ${KAFKA_START_TIMEOUT}s, stopping it (log: $LOGFILE)"
      stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.3
  done

  # Optional watchdog: stop the broker when the owning process goes away
  # (e.g. a test run killed with SIGKILL), so no JVM is leaked.
  if [[ -n "${KAFKA_OWNER_PID:-}" ]]; then
    # shellcheck disable=SC2016  # expanded by the inner shell
    KAFKA_DATA_DIR="$KAFKA_DATA_DIR" setsid bash -c '
      alive() { s=$(sed -n "s/^.*) \(.\).*/\1/p" "/proc/$1/stat" 2>/dev/null); [[ -n $s && $s != Z ]]; }
      while alive "$1" && alive "$2"; do sleep 2; done
      alive "$2" && exec "$0" stop' \
      "$SELF" "$KAFKA_OWNER_PID" "$pid" </dev/null >/dev/null 2>&1 &
  fi
  echo "kafka running (pid $pid), $(what) $(bootstrap), data $KAFKA_DATA_DIR"
}

# SIGKILL, as a crash would: no shutdown, nothing flushed (tests of broker failures).
kill_now() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "kafka not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  while alive "$pid"; do sleep 0.1; done
  rm -f "$PIDFILE"
  echo "kafka killed (pid $pid)"
}

stop() {
  local pid deadline
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "kafka not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    say "no exit after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL to $pid"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  echo "kafka stopped (pid $pid)"
}

what() { if [[ -n "$IS_BROKER" ]]; then echo bootstrap; else echo controller; fi; }

# host:port clients should use, from the written config (falls back to env); the
# controller listener of a dedicated controller.
bootstrap() {
  local adv
  if [[ -z "$IS_BROKER" ]]; then echo "127.0.0.1:$KAFKA_CONTROLLER_PORT"; return; fi
  adv="$(sed -n 's#^advertised.listeners=[A-Z_]*://##p' "$PROPS" 2>/dev/null | tail -n 1 || true)"
  echo "${adv:-127.0.0.1:$KAFKA_PORT}"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running (pid $pid), $(what) $(bootstrap), data $KAFKA_DATA_DIR"
    return 0
  fi
  echo "stopped"
  return 1
}

clean() {
  stop
  rm -rf "$KAFKA_DATA_DIR"
  echo "removed $KAFKA_DATA_DIR"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  kill) kill_now ;;
  status) status ;;
  clean) clean ;;
  *)
    echo "usage: $0 {fetch|start|stop|kill|status|clean}" >&2
    exit 2
    ;;
esac
