#!/usr/bin/env bash
# Installs, starts and stops the local DynamoDB/S3 emulator (moto, see server.py).
#   localstack/emulator.sh start [PORT]   install if needed, start, wait until it answers
#   localstack/emulator.sh stop           stop it (by PID)
#   localstack/emulator.sh url            print its endpoint URL
# Everything lives in .local/emulator (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="$root/.local/emulator"
venv="$state/venv"
port="${2:-${EMULATOR_PORT:-4566}}"
mkdir -p "$state"

install() {
  if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$state/installed-requirements.txt"; then
    return
  fi
  echo "installing the emulator into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$state/installed-requirements.txt"
}

running() {
  [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

case "${1:-}" in
  start)
    install
    if running; then
      echo "emulator already running (pid $(cat "$state/pid"))" >&2
    else
      "$venv/bin/python" "$here/server.py" 127.0.0.1 "$port" >"$state/log" 2>&1 &
      echo $! >"$state/pid"
      echo "$port" >"$state/port"
    fi
    for _ in $(seq 1 100); do
      if curl -sf "http://127.0.0.1:$(cat "$state/port")/_fault/stats" >/dev/null 2>&1; then
        echo "emulator ready at http://127.0.0.1:$(cat "$state/port")" >&2
        exit 0
      fi
      running || { echo "emulator exited; log:" >&2; cat "$state/log" >&2; exit 1; }
      sleep 0.2
    done
    echo "emulator did not answer in 20 s; log:" >&2
    cat "$state/log" >&2
    exit 1
    ;;
  stop)
    if running; then
      kill "$(cat "$state/pid")" 2>/dev/null || true
      for _ in $(seq 1 50); do running || break; sleep 0.1; done
      running && kill -9 "$(cat "$state/pid")" 2>/dev/null || true
    fi
    rm -f "$state/pid"
    ;;
  url)
    echo "http://127.0.0.1:$(cat "$state/port" 2>/dev/null || echo "$port")"
    ;;
  *)
    echo "usage: $0 start [PORT] | stop | url" >&2
    exit 2
    ;;
esac
