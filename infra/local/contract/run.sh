#!/usr/bin/env bash
# `make contract`: Schemathesis checks docs/openapi.yaml against a fresh local
# stack, once as a shopper and once as an admin (ADR 0011). Run it inside
# infra/local/with-emulator.sh, which provides the emulator's endpoints; this
# script starts the API (and the sandbox provider) on free ports, with the demo
# data, and stops it on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/.venv/bin"
local_bin="$root/target/debug/flashcart-local"
work="$(mktemp -d)"
api_pid=""
cleanup() {
  if [ -n "$api_pid" ]; then
    kill "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$("$venv/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# the partner limits lifted: thousands of generated requests from one key and
# one address should reach the routes, not only their 429 (tests/tests/partner.rs
# proves the limits)
FLASHCART_PARAMETERS="PartnerRequestsPerMinute=100000,PartnerFailedAttempts=100000" \
FLASHCART_EXTERNAL_ENDPOINTS=1 API_PORT="$port" SANDBOX_PORT=0 FEED_SERVER_PORT=0 RUST_LOG="${RUST_LOG:-warn}" \
  "$local_bin" run >"$work/stack.log" 2>&1 &
api_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
  curl -fs "$base/health" >/dev/null 2>&1 && break
  kill -0 "$api_pid" 2>/dev/null || { cat "$work/stack.log" >&2; echo "the local stack exited before it served" >&2; exit 1; }
  sleep 0.1
done
curl -fs "$base/health" >/dev/null || { cat "$work/stack.log" >&2; echo "the local stack did not serve within 60 s" >&2; exit 1; }
echo "contract: API $base" >&2
# the demo partner's key, as make run prints it
FLASHCART_PARTNER_KEY="$(sed -n "s/.*partner *'demo-partner' (API key \(fc_[A-Za-z0-9_]*\)).*/\1/p" "$work/stack.log" | head -n 1)"
[ -n "$FLASHCART_PARTNER_KEY" ] || { cat "$work/stack.log" >&2; echo "no demo partner key in the stack's banner" >&2; exit 1; }
export FLASHCART_PARTNER_KEY

# Schemathesis and Hypothesis keep caches in the working directory: keep them out of the tree.
mkdir -p "$root/target/contract"
cd "$root/target/contract"
status=0
for who in shopper admin; do
  case "$who" in
    shopper) groups="" ;;
    admin) groups="admin" ;;
  esac
  FLASHCART_CONTRACT_DIR="$here"
  FLASHCART_TOKEN="$("$local_bin" token --user "contract-$who" --groups "$groups")"
  export FLASHCART_CONTRACT_DIR FLASHCART_TOKEN
  echo "contract: as $who" >&2
  "$venv/schemathesis" --config-file "$here/schemathesis.toml" run "$root/docs/openapi.yaml" \
    --url "$base" || status=1
done
if [ "$status" -ne 0 ]; then
  echo "contract: the stack's log follows" >&2
  grep -v '"level":"INFO"' "$work/stack.log" | tail -n 50 >&2 || true
fi
exit "$status"
