#!/usr/bin/env bash
# Kafka Connect for the sink of worker-file-rows into PostgreSQL (Debezium's JDBC sink,
# Apicurio Registry's AvroConverter): the worker's jars and both plugins come from Maven
# (pom.xml here), no Docker and no tarball download by hand.
#
#   deploy/connect/connect.sh fetch    # mvn once: jars -> deploy/connect/.lib (idempotent)
#   deploy/connect/connect.sh start    # write the worker config, launch, wait until REST answers
#   deploy/connect/connect.sh status   # "running ..." (exit 0) or "stopped" (exit 1)
#   deploy/connect/connect.sh stop     # SIGTERM, SIGKILL after a timeout; ok if not running
#
# Environment (defaults):
#   CONNECT_MODE=standalone        or distributed (connect-distributed.properties: a cluster;
#                                  create the connector over REST, see that file)
#   CONNECT_BOOTSTRAP=127.0.0.1:9092   the Kafka brokers
#   CONNECT_PORT=8083              the REST API, bound to 127.0.0.1 only
#   CONNECT_DATA_DIR=deploy/connect/.data   worker.properties, connect.pid, connect.log, offsets
#   CONNECT_CONNECTORS             standalone: connector configs to run, space separated
#                                  (default: worker-file-rows-sink.properties here)
#   CONNECT_REPLICATION            distributed: replication of the internal topics (default:
#                                  the file's 3; set 1 for a single local broker)
#   CONNECT_HEAP="-Xmx512m -Xms128m"
#   CONNECT_JVM_OPTS               GC/JIT flags (as Kafka's own scripts)
#   CONNECT_START_TIMEOUT=120      seconds to wait until the REST API answers
#   CONNECT_STOP_TIMEOUT=30        seconds between SIGTERM and SIGKILL
#   CONNECT_EXTRA_CONFIG           extra worker.properties lines (newline separated)
#   CONNECT_OWNER_PID              if set, the worker is stopped when that process exits
#   CONNECT_DB_PASSWORD_FILE       a file holding the database password: given to the worker
#                                  as WORKERFILE_CONNECT_DB_PASSWORD (never on a command line)
#   WORKERFILE_CONNECT_JDBC_URL, WORKERFILE_CONNECT_DB_USER, WORKERFILE_CONNECT_REGISTRY_URL
#                                  read by the connector config (${env:...}), passed through
#   CONNECT_LIB_DIR=deploy/connect/.lib, JAVA=java (or $JAVA_HOME/bin/java)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"

CONNECT_MODE="${CONNECT_MODE:-standalone}"
CONNECT_BOOTSTRAP="${CONNECT_BOOTSTRAP:-127.0.0.1:9092}"
CONNECT_PORT="${CONNECT_PORT:-8083}"
CONNECT_DATA_DIR="${CONNECT_DATA_DIR:-$HERE/.data}"
CONNECT_CONNECTORS="${CONNECT_CONNECTORS:-$HERE/worker-file-rows-sink.properties}"
CONNECT_HEAP="${CONNECT_HEAP:--Xmx512m -Xms128m}"
DEFAULT_JVM_OPTS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
-XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"
CONNECT_JVM_OPTS="${CONNECT_JVM_OPTS:-$DEFAULT_JVM_OPTS}"
CONNECT_START_TIMEOUT="${CONNECT_START_TIMEOUT:-120}"
CONNECT_STOP_TIMEOUT="${CONNECT_STOP_TIMEOUT:-30}"
CONNECT_LIB_DIR="${CONNECT_LIB_DIR:-$HERE/.lib}"
if [[ -z "${JAVA:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
fi

[[ "$CONNECT_DATA_DIR" = /* ]] || CONNECT_DATA_DIR="$PWD/$CONNECT_DATA_DIR"
PROPS="$CONNECT_DATA_DIR/worker.properties"
PIDFILE="$CONNECT_DATA_DIR/connect.pid"
LOGFILE="$CONNECT_DATA_DIR/connect.log"
LOG4J="-Dlog4j.configuration=file:$HERE/log4j.properties"

say() { echo "connect.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------- fetch
# The worker's jars (.lib/runtime), and the plugins (.lib/plugins: Apicurio's converter and
# Debezium's JDBC sink), once per pom.xml content; a lock makes parallel callers wait.
fetch() {
  local want stamp="$CONNECT_LIB_DIR/.pom.sha256" tmp
  want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  mkdir -p "$(dirname "$CONNECT_LIB_DIR")"
  exec 9>"$CONNECT_LIB_DIR.lock"
  flock 9
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then exec 9>&-; return 0; fi
  command -v mvn >/dev/null || die "mvn not found (Maven is needed once to fetch the Connect jars)"
  say "fetching Kafka Connect, Debezium's JDBC sink and Apicurio's converter with Maven into $CONNECT_LIB_DIR"
  tmp="$CONNECT_LIB_DIR.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  if ! { mvn -q -B -f "$HERE/pom.xml" -P runtime dependency:copy-dependencies -DoutputDirectory="$tmp/runtime" &&
         mvn -q -B -f "$HERE/pom.xml" -P apicurio dependency:copy-dependencies \
           -DoutputDirectory="$tmp/plugins/apicurio-registry-converter" &&
         mvn -q -B -f "$HERE/pom.xml" -P debezium dependency:unpack -Dplugins.dir="$tmp/plugins"; } >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "maven fetch failed"
  fi
  rm -f "$tmp.log"
  compgen -G "$tmp/plugins/debezium-connector-jdbc/debezium-connector-jdbc-*.jar" >/dev/null ||
    die "the Debezium plugin archive did not unpack into $tmp/plugins/debezium-connector-jdbc"
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$CONNECT_LIB_DIR"
  mv "$tmp" "$CONNECT_LIB_DIR"
  exec 9>&-
}

# ---------------------------------------------------------------- helpers
proc_state() { sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true; }
alive() { local s; s="$(proc_state "$1")"; [[ -n "$s" && "$s" != "Z" ]]; }

running_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "org.apache.kafka.connect.cli.Connect" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF " $PROPS" || return 1
  echo "$pid"
}

check_port_free() {
  python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    sys.exit(f"connect.sh: 127.0.0.1:{sys.argv[1]} not usable: {e.strerror}")' "$1"
}

rest_answers() {
  python3 -c 'import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/connectors", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)' "$1"
}

show_failure() {
  local section
  section="$(tail -n +"$1" "$LOGFILE")"
  grep -m 12 -E ' (ERROR|FATAL) |Exception' <<<"$section" >&2 || true
  echo "--- last lines of $LOGFILE:" >&2
  tail -n 15 <<<"$section" >&2
}

write_properties() {
  local template
  case "$CONNECT_MODE" in
    standalone) template="$HERE/connect-standalone.properties" ;;
    distributed) template="$HERE/connect-distributed.properties" ;;
    *) die "CONNECT_MODE must be standalone or distributed, not $CONNECT_MODE" ;;
  esac
  {
    echo "# Written by deploy/connect/connect.sh on every start from $(basename "$template");"
    echo "# edits here are overwritten (use CONNECT_EXTRA_CONFIG instead)."
    cat "$template"
    echo
    echo "# ---- this machine (connect.sh)"
    echo "bootstrap.servers=$CONNECT_BOOTSTRAP"
    echo "listeners=http://127.0.0.1:$CONNECT_PORT"
    echo "rest.advertised.host.name=127.0.0.1"
    echo "rest.advertised.port=$CONNECT_PORT"
    echo "plugin.path=$CONNECT_LIB_DIR/plugins"
    if [[ "$CONNECT_MODE" == standalone ]]; then
      echo "offset.storage.file.filename=$CONNECT_DATA_DIR/connect.offsets"
    elif [[ -n "${CONNECT_REPLICATION:-}" ]]; then
      echo "config.storage.replication.factor=$CONNECT_REPLICATION"
      echo "offset.storage.replication.factor=$CONNECT_REPLICATION"
      echo "status.storage.replication.factor=$CONNECT_REPLICATION"
    fi
    if [[ -n "${CONNECT_EXTRA_CONFIG:-}" ]]; then
      printf '\n# CONNECT_EXTRA_CONFIG\n%s\n' "$CONNECT_EXTRA_CONFIG"
    fi
  } >"$PROPS"
}

# ---------------------------------------------------------------- commands
start() {
  local pid deadline first_line main args=() connector
  if pid="$(running_pid)"; then
    say "already running (pid $pid), REST http://127.0.0.1:$CONNECT_PORT"
    return 0
  fi
  check_port_free "$CONNECT_PORT"
  fetch
  mkdir -p "$CONNECT_DATA_DIR"
  write_properties
  if [[ "$CONNECT_MODE" == standalone ]]; then
    main=org.apache.kafka.connect.cli.ConnectStandalone
    for connector in $CONNECT_CONNECTORS; do
      [[ -f "$connector" ]] || die "connector config $connector not found"
      args+=("$connector")
    done
  else
    main=org.apache.kafka.connect.cli.ConnectDistributed
  fi
  if [[ -n "${CONNECT_DB_PASSWORD_FILE:-}" ]]; then
    [[ -r "$CONNECT_DB_PASSWORD_FILE" ]] || die "CONNECT_DB_PASSWORD_FILE $CONNECT_DB_PASSWORD_FILE is not readable"
    WORKERFILE_CONNECT_DB_PASSWORD="$(head -n 1 "$CONNECT_DB_PASSWORD_FILE")"
  fi
  # every variable the connector config reads must exist (an unknown ${env:X} stays as it is)
  export WORKERFILE_CONNECT_DB_PASSWORD="${WORKERFILE_CONNECT_DB_PASSWORD:-}"
  export WORKERFILE_CONNECT_DB_USER="${WORKERFILE_CONNECT_DB_USER:-}"
  export WORKERFILE_CONNECT_JDBC_URL="${WORKERFILE_CONNECT_JDBC_URL:-}"
  export WORKERFILE_CONNECT_REGISTRY_URL="${WORKERFILE_CONNECT_REGISTRY_URL:-}"

  rm -f "$PIDFILE"
  echo "=== $(date -Is) start ($CONNECT_MODE) on 127.0.0.1:$CONNECT_PORT, brokers $CONNECT_BOOTSTRAP" >>"$LOGFILE"
  first_line=$(($(wc -l <"$LOGFILE") + 1))
  # shellcheck disable=SC2086,SC2016  # HEAP/JVM_OPTS are word lists; $$ is the inner shell's
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    "$JAVA" $CONNECT_HEAP $CONNECT_JVM_OPTS "$LOG4J" -cp "$CONNECT_LIB_DIR/runtime/*" \
    "$main" "$PROPS" "${args[@]}" </dev/null >>"$LOGFILE" 2>&1 &

  deadline=$((SECONDS + CONNECT_START_TIMEOUT))
  until pid="$(running_pid)"; do
    ((SECONDS < deadline)) || break
    sleep 0.1
  done
  while true; do
    if ! pid="$(running_pid)"; then
      show_failure "$first_line"
      die "Connect exited during startup (log: $LOGFILE)"
    fi
    rest_answers "$CONNECT_PORT" && break
    if ((SECONDS >= deadline)); then
      show_failure "$first_line"
      say "Connect's REST API not answering after ${CONNECT_START_TIMEOUT}s, stopping it (log: $LOGFILE)"
      stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.5
  done

  if [[ -n "${CONNECT_OWNER_PID:-}" ]]; then
    # shellcheck disable=SC2016  # expanded by the inner shell
    CONNECT_DATA_DIR="$CONNECT_DATA_DIR" CONNECT_PORT="$CONNECT_PORT" setsid bash -c '
      alive() { s=$(sed -n "s/^.*) \(.\).*/\1/p" "/proc/$1/stat" 2>/dev/null); [[ -n $s && $s != Z ]]; }
      while alive "$1" && alive "$2"; do sleep 2; done
      alive "$2" && exec "$0" stop' \
      "$SELF" "$CONNECT_OWNER_PID" "$pid" </dev/null >/dev/null 2>&1 &
  fi
  echo "connect running (pid $pid, $CONNECT_MODE), REST http://127.0.0.1:$CONNECT_PORT, data $CONNECT_DATA_DIR"
}

stop() {
  local pid deadline
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "connect not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + CONNECT_STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    say "no exit after ${CONNECT_STOP_TIMEOUT}s, sending SIGKILL to $pid"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  echo "connect stopped (pid $pid)"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running (pid $pid), REST http://127.0.0.1:$CONNECT_PORT, data $CONNECT_DATA_DIR"
    return 0
  fi
  echo "stopped"
  return 1
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 {fetch|start|stop|status}" >&2
    exit 2
    ;;
esac
