#!/usr/bin/env bash
# The Kafka-protocol broker the Kafka tests and local runs talk to: tansu, a Kafka-compatible
# broker in Rust, pinned and built into a cache outside the clone (a build takes ~25 minutes on
# 2 cores, so a fresh clone on the same machine must not rebuild it). Apache Kafka itself cannot
# be obtained from the registries reachable here.
#
#   scripts/kafka.sh start    install if missing or of another version, start, wait for the port
#   scripts/kafka.sh stop     stop the broker only if this script started it
#   scripts/kafka.sh status   say whether the port answers and who started the broker
#
# It never stops a broker it did not start, and never starts a second one on a port that already
# answers: `start` twice is `start` once.
#
# Storage: a SQLite file in the cache, emptied at every start (tests create fresh topics and never
# rely on a previous run's). Not tansu's `memory://` engine: in 0.6.0 a fetch from an offset
# inside a multi-record batch returns no records there, so a consumer group resuming after a
# commit in the middle of a produced batch waits forever (the SQLite engine serves it correctly).
# ENTITYWATCH_TEST_KAFKA_STORAGE=memory selects the memory engine anyway.
#
# Environment: ENTITYWATCH_CACHE (default ~/.cache/entitywatch), ENTITYWATCH_TEST_KAFKA_PORT
# (default 9092), ENTITYWATCH_TEST_KAFKA_STORAGE (sqlite|memory, default sqlite).
set -euo pipefail

tansu_version="0.6.0"
cache="${ENTITYWATCH_CACHE:-$HOME/.cache/entitywatch}"
root="$cache/tansu"
bin="$root/bin/tansu"
port="${ENTITYWATCH_TEST_KAFKA_PORT:-9092}"
state_dir="$cache/services"
pid_file="$state_dir/kafka-$port.pid"
log_file="$cache/kafka-$port.log"
storage="${ENTITYWATCH_TEST_KAFKA_STORAGE:-sqlite}"
db_name="kafka-$port.db"
mkdir -p "$state_dir"

port_open() {
  # A subshell so the descriptor closes with it; bash's /dev/tcp needs no extra tool.
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# The pid in our pid file, if that process is still alive and still tansu (pids are reused).
our_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q tansu || return 1
  echo "$pid"
}

install_tansu() {
  if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "tansu $tansu_version" ]; then
    return
  fi
  echo "kafka: building tansu $tansu_version into $root (about 25 minutes on 2 cores)" >&2
  # Without dynostore/libsql tansu has no storage engine at all.
  cargo install --locked tansu --version "$tansu_version" --features dynostore,libsql --root "$root"
}

start() {
  if pid=$(our_pid); then
    echo "kafka: already running (pid $pid, started by this script) on 127.0.0.1:$port"
    return
  fi
  rm -f "$pid_file"
  if port_open; then
    echo "kafka: something already listens on 127.0.0.1:$port; using it, not starting another"
    return
  fi
  install_tansu
  local engine
  case "$storage" in
    # tansu resolves a sqlite:// path against its working directory, even one starting with
    # `/`, hence the cd below and a bare file name here.
    sqlite) rm -f "$cache/$db_name" "$cache/$db_name"-*; engine="sqlite://$db_name" ;;
    memory) engine="memory://tansu/" ;;
    *) echo "kafka: ENTITYWATCH_TEST_KAFKA_STORAGE must be sqlite or memory" >&2; exit 2 ;;
  esac
  local t0
  t0=$(date +%s%N)
  # setsid: the broker must outlive this script and the shell that called it.
  cd "$cache"
  setsid "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$engine" \
    >>"$log_file" 2>&1 </dev/null &
  local pid=$!
  cd - >/dev/null
  echo "$pid" >"$pid_file"
  for _ in $(seq 1 300); do
    if port_open; then
      echo "kafka: tansu $tansu_version ($storage storage) ready on 127.0.0.1:$port (pid $pid, $(( ($(date +%s%N) - t0) / 1000000 )) ms; log $log_file)"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      echo "kafka: tansu exited during start-up; last lines of $log_file:" >&2
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "kafka: 127.0.0.1:$port did not accept connections within 30 s; stopping pid $pid" >&2
  kill "$pid" 2>/dev/null || true
  rm -f "$pid_file"
  exit 1
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$pid_file"
    echo "kafka: no broker started by this script on port $port; nothing to stop"
    return
  fi
  kill "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: pid $pid ignored SIGTERM for 10 s; sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  echo "kafka: stopped tansu (pid $pid)"
}

status() {
  local pid
  if pid=$(our_pid); then
    echo "kafka: running on 127.0.0.1:$port (pid $pid, started by this script)"
  elif port_open; then
    echo "kafka: 127.0.0.1:$port answers, but not started by this script"
  else
    echo "kafka: not running on 127.0.0.1:$port"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
