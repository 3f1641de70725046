#!/usr/bin/env bash
# Runs a command against a fresh emulator on a free port, then stops it.
# The command sees AWS_ENDPOINT_URL; its exit status is this script's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${FLASHCART_PYTHON:-$here/../../.venv/bin/python}"
portfile="$(mktemp -u)"
"$python" "$here/emulator.py" --port 0 --port-file "$portfile" >/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$portfile"' EXIT
for _ in $(seq 1 300); do
  [ -s "$portfile" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "the emulator exited before it listened" >&2; exit 1; }
  sleep 0.1
done
[ -s "$portfile" ] || { echo "the emulator did not listen within 30 s" >&2; exit 1; }
export AWS_ENDPOINT_URL="http://127.0.0.1:$(cat "$portfile")"
echo "emulator: $AWS_ENDPOINT_URL" >&2
"$@"
