#!/usr/bin/env bash
# Local schema registry: Apicurio Registry (Apache License 2.0) from Maven Central, with
# its Confluent-compatible API, for the Confluent wire format of the topics
# (WORKERFILE_WIRE_FORMAT=confluent, README "Wire formats").  No Docker: a Java 17 process.
#
#   deploy/registry/registry.sh fetch    # mvn once: archive -> deploy/registry/.lib (idempotent)
#   deploy/registry/registry.sh start    # launch, wait until the ccompat API answers
#   deploy/registry/registry.sh status   # "running ..." (exit 0) or "stopped" (exit 1)
#   deploy/registry/registry.sh stop     # SIGTERM, SIGKILL after a timeout; ok if not running
#   deploy/registry/registry.sh clean    # stop and delete the data dir
#   deploy/registry/registry.sh url      # the ccompat base URL clients use
#
# Clients (WORKERFILE_SCHEMA_REGISTRY_URL, Confluent serializers) use
#   http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
#
# Environment (defaults):
#   REGISTRY_PORT=8081              HTTP port, bound to 127.0.0.1 only
#   REGISTRY_DATA_DIR=deploy/registry/.data   registry.pid, registry.log, h2/ (the schemas)
#   REGISTRY_STORAGE=file           file: H2 database in REGISTRY_DATA_DIR/h2, kept across
#                                   restarts (schema ids on the wire stay valid);
#                                   mem: in memory, lost at stop (tests)
#   REGISTRY_HEAP="-Xmx256m -Xms64m"
#   REGISTRY_JVM_OPTS               GC/JIT flags (default: serial GC, small footprint)
#   REGISTRY_START_TIMEOUT=90       seconds to wait for readiness
#   REGISTRY_STOP_TIMEOUT=30        seconds between SIGTERM and SIGKILL
#   REGISTRY_OWNER_PID              if set, the registry is stopped when that process exits
#   REGISTRY_LIB_DIR=deploy/registry/.lib, JAVA=java (or $JAVA_HOME/bin/java), PYTHON=python3
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"

REGISTRY_PORT="${REGISTRY_PORT:-8081}"
REGISTRY_DATA_DIR="${REGISTRY_DATA_DIR:-$HERE/.data}"
REGISTRY_STORAGE="${REGISTRY_STORAGE:-file}"
REGISTRY_HEAP="${REGISTRY_HEAP:--Xmx256m -Xms64m}"
REGISTRY_JVM_OPTS="${REGISTRY_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -Djava.awt.headless=true}"
REGISTRY_START_TIMEOUT="${REGISTRY_START_TIMEOUT:-90}"
REGISTRY_STOP_TIMEOUT="${REGISTRY_STOP_TIMEOUT:-30}"
REGISTRY_LIB_DIR="${REGISTRY_LIB_DIR:-$HERE/.lib}"
PYTHON="${PYTHON:-python3}"
if [[ -z "${JAVA:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
fi

[[ "$REGISTRY_DATA_DIR" = /* ]] || REGISTRY_DATA_DIR="$PWD/$REGISTRY_DATA_DIR"
PIDFILE="$REGISTRY_DATA_DIR/registry.pid"
LOGFILE="$REGISTRY_DATA_DIR/registry.log"
VERSION="$(sed -n 's#.*<apicurio.version>\(.*\)</apicurio.version>.*#\1#p' "$HERE/pom.xml")"
RUNNER="$REGISTRY_LIB_DIR/apicurio-registry-app-$VERSION-runner.jar"
# On the command line so that running_pid() can tell this data dir's registry from others.
MARKER="-Dworkerfile.registry.dir=$REGISTRY_DATA_DIR"

say() { echo "registry.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------- fetch
# Unpack the registry's archive into $REGISTRY_LIB_DIR, once per pom.xml content.
fetch() {
  local want stamp="$REGISTRY_LIB_DIR/.pom.sha256" tmp
  want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  exec 9>"$REGISTRY_LIB_DIR.lock"
  flock 9
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then exec 9>&-; return 0; fi
  command -v mvn >/dev/null || die "mvn not found (Maven is needed once to fetch the registry)"
  say "fetching Apicurio Registry $VERSION with Maven into $REGISTRY_LIB_DIR"
  tmp="$REGISTRY_LIB_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$tmp/archive" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "maven fetch failed"
  fi
  rm -f "$tmp.log"
  tar -xzf "$tmp/archive/apicurio-registry-app-$VERSION-all.tar.gz" -C "$tmp" \
    || { rm -rf "$tmp"; die "cannot unpack the registry archive"; }
  rm -rf "$tmp/archive"
  [[ -f "$tmp/apicurio-registry-app-$VERSION-runner.jar" ]] || { rm -rf "$tmp"; die "no runner jar in the archive"; }
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$REGISTRY_LIB_DIR"
  mv "$tmp" "$REGISTRY_LIB_DIR"
  exec 9>&-
}

# ---------------------------------------------------------------- helpers
proc_state() { sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true; }
alive() { local s; s="$(proc_state "$1")"; [[ -n "$s" && "$s" != "Z" ]]; }

# The registry's pid if it is alive and really the registry of this data dir.
running_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$MARKER" || return 1
  echo "$pid"
}

check_port_free() {
  "$PYTHON" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    sys.exit(f"registry.sh: 127.0.0.1:{sys.argv[1]} not usable: {e.strerror}")' "$1"
}

url() { echo "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"; }

# Ready when the ccompat API lists the subjects (the storage answers too).
probe() {
  "$PYTHON" -c 'import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/subjects", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)' "$(url)"
}

show_failure() {
  local section
  section="$(tail -n +"$1" "$LOGFILE")"
  grep -m 12 -E ' (ERROR|FATAL) |Exception' <<<"$section" >&2 || true
  echo "--- last lines of $LOGFILE:" >&2
  tail -n 15 <<<"$section" >&2
}

# ---------------------------------------------------------------- commands
start() {
  local pid deadline first_line jdbc
  if pid="$(running_pid)"; then
    say "already running (pid $pid), $(url)"
    return 0
  fi
  case "$REGISTRY_STORAGE" in
    file) jdbc="jdbc:h2:file:$REGISTRY_DATA_DIR/h2/registry" ;;
    mem) jdbc="jdbc:h2:mem:registry_db" ;;
    *) die "REGISTRY_STORAGE must be file or mem, not '$REGISTRY_STORAGE'" ;;
  esac
  check_port_free "$REGISTRY_PORT"
  fetch
  mkdir -p "$REGISTRY_DATA_DIR"
  rm -f "$PIDFILE"
  echo "=== $(date -Is) start on 127.0.0.1:$REGISTRY_PORT, storage $REGISTRY_STORAGE" >>"$LOGFILE"
  first_line=$(($(wc -l <"$LOGFILE") + 1))
  # Own session (setsid), detached stdio: see deploy/kafka/kafka.sh.
  # shellcheck disable=SC2086,SC2016
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    "$JAVA" $REGISTRY_HEAP $REGISTRY_JVM_OPTS "$MARKER" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.datasource.jdbc.url="$jdbc" \
    -Dquarkus.datasource.jdbc.initial-size=2 -Dquarkus.datasource.jdbc.min-size=2 \
    -Dquarkus.datasource.jdbc.max-size=16 \
    -jar "$RUNNER" </dev/null >>"$LOGFILE" 2>&1 &

  deadline=$((SECONDS + REGISTRY_START_TIMEOUT))
  until pid="$(running_pid)"; do
    ((SECONDS < deadline)) || break
    sleep 0.1
  done
  while true; do
    if ! pid="$(running_pid)"; then
      show_failure "$first_line"
      die "registry exited during startup (log: $LOGFILE)"
    fi
    probe && break
    if ((SECONDS >= deadline)); then
      show_failure "$first_line"
      say "registry not ready after ${REGISTRY_START_TIMEOUT}s, stopping it (log: $LOGFILE)"
      stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.3
  done

  if [[ -n "${REGISTRY_OWNER_PID:-}" ]]; then
    # shellcheck disable=SC2016
    REGISTRY_DATA_DIR="$REGISTRY_DATA_DIR" setsid bash -c '
      alive() { s=$(sed -n "s/^.*) \(.\).*/\1/p" "/proc/$1/stat" 2>/dev/null); [[ -n $s && $s != Z ]]; }
      while alive "$1" && alive "$2"; do sleep 2; done
      alive "$2" && exec "$0" stop' \
      "$SELF" "$REGISTRY_OWNER_PID" "$pid" </dev/null >/dev/null 2>&1 &
  fi
  echo "registry running (pid $pid), url $(url), storage $REGISTRY_STORAGE, data $REGISTRY_DATA_DIR"
}

stop() {
  local pid deadline
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "registry not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + REGISTRY_STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    say "no exit after ${REGISTRY_STOP_TIMEOUT}s, sending SIGKILL to $pid"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  echo "registry stopped (pid $pid)"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running (pid $pid), url $(url), data $REGISTRY_DATA_DIR"
    return 0
  fi
  echo "stopped"
  return 1
}

clean() {
  stop
  rm -rf "$REGISTRY_DATA_DIR"
  echo "removed $REGISTRY_DATA_DIR"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  clean) clean ;;
  url) url ;;
  *)
    echo "usage: $0 {fetch|start|stop|status|clean|url}" >&2
    exit 2
    ;;
esac
