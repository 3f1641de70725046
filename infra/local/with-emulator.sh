#!/usr/bin/env bash
# Runs a command against a fresh emulator on free ports, then stops it.
# Two moto processes, as on AWS where services do not share a machine: one
# serves DynamoDB (AWS_ENDPOINT_URL_DYNAMODB), the other SQS and S3
# (AWS_ENDPOINT_URL), so a long poll or a large upload never takes
# DynamoDB's interpreter (ADR 0008). The command's exit status is this script's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${FLASHCART_PYTHON:-$here/../../.venv/bin/python}"
pids=()
files=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "${files[@]}"
}
trap cleanup EXIT

# launch: an emulator on a free port, its port file appended to $files
launch() {
  local portfile
  portfile="$(mktemp -u)"
  files+=("$portfile")
  "$python" "$here/emulator.py" --port 0 --port-file "$portfile" >/dev/null &
  pids+=("$!")
}
# url I NAME: the URL of the I-th emulator, once it listens
url() {
  for _ in $(seq 1 300); do
    [ -s "${files[$1]}" ] && break
    kill -0 "${pids[$1]}" 2>/dev/null || { echo "the $2 emulator exited before it listened" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "${files[$1]}" ] || { echo "the $2 emulator did not listen within 30 s" >&2; exit 1; }
  echo "http://127.0.0.1:$(cat "${files[$1]}")"
}

launch
launch
AWS_ENDPOINT_URL_DYNAMODB="$(url 0 DynamoDB)"
AWS_ENDPOINT_URL="$(url 1 "SQS and S3")"
export AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL
echo "emulator: DynamoDB $AWS_ENDPOINT_URL_DYNAMODB, SQS and S3 $AWS_ENDPOINT_URL" >&2
"$@"
