#!/usr/bin/env bash
# Side-by-side throughput of plain Caddy reverse_proxy and the same with
# sso_gateway in front (with a valid session cookie), in one run, on
# loopback, against one tiny upstream.
#
# One `ssogate demo` process (built from cmd/ssogate) serves both:
#   gateway  the demo's server: sso_gateway + reverse_proxy
#   plain    a second server added through Caddy's admin API: reverse_proxy only
# Both proxy to `bench upstream` (a fixed 13-byte answer), so the numbers
# compare the proxies, not an application. The session cookie comes from
# a real sign-in through the demo SAML IdP (`bench login`); both servers get
# the same requests, cookie included, so only the gateway's work differs.
#
# Usage: examples/bench/run.sh
# Environment:
#   CONCURRENCY  connections to test, default "1 16 64"
#   DURATION     wrk duration per measurement, default 10s
#   THREADS      wrk threads, default 1 (the machine is small; wrk must not
#                take the CPU the proxies need)
#   ROUNDS       how many times each pair is measured (interleaved), default 3;
#                the table gives the ratio of the means and the median of
#                the per-round ratios
#   BASE_PORT    first of six loopback ports used, default 18080
#   PROFILE      when 1, also take a 10 s CPU profile of the gateway under
#                load from Caddy's admin /debug/pprof and print its top
#   OUT          directory for wrk outputs and the profile (default: a temp dir)
set -euo pipefail

cd "$(dirname "$0")/../.."

CONCURRENCY=${CONCURRENCY:-"1 16 64"}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-18080}
PROFILE=${PROFILE:-0}

if ! command -v wrk >/dev/null 2>&1; then
	echo "run.sh: wrk is not installed. On Debian/Ubuntu: sudo apt-get install -y wrk" >&2
	exit 1
fi
command -v curl >/dev/null 2>&1 || { echo "run.sh: curl is required" >&2; exit 1; }

WORK=$(mktemp -d -t ssogate-bench-XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK/data"
}
trap cleanup EXIT

GATEWAY=127.0.0.1:$((BASE_PORT))
IDP=127.0.0.1:$((BASE_PORT + 1))
DEMO_UPSTREAM=127.0.0.1:$((BASE_PORT + 2))
ADMIN=127.0.0.1:$((BASE_PORT + 3))
PLAIN=127.0.0.1:$((BASE_PORT + 4))
UPSTREAM=127.0.0.1:$((BASE_PORT + 5))

echo "building cmd/ssogate and examples/bench ..."
go build -o "$WORK/ssogate" ./cmd/ssogate
go build -o "$WORK/bench" ./examples/bench

wait_http() { # url: wait up to 30 s for any HTTP answer
	for _ in $(seq 300); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "run.sh: $1 did not come up" >&2
	exit 1
}

"$WORK/bench" upstream -listen "$UPSTREAM" &
PIDS+=($!)
"$WORK/ssogate" demo --gateway "$GATEWAY" --idp "$IDP" --upstream "$DEMO_UPSTREAM" \
	--admin "$ADMIN" --data "$WORK/data" >"$OUT/demo.log" 2>&1 &
PIDS+=($!)
wait_http "http://$UPSTREAM/"
for _ in $(seq 600); do
	grep -q "ssogate demo is running" "$OUT/demo.log" && break
	kill -0 "${PIDS[1]}" 2>/dev/null || { cat "$OUT/demo.log" >&2; exit 1; }
	sleep 0.1
done
grep -q "ssogate demo is running" "$OUT/demo.log" || { echo "run.sh: demo did not start" >&2; cat "$OUT/demo.log" >&2; exit 1; }

admin() { # method path json
	curl -sS -f -X "$1" -H 'Content-Type: application/json' -d "$3" "http://$ADMIN$2" >/dev/null
}
# (a) plain reverse_proxy, a server of its own in the same Caddy.
admin PUT /config/apps/http/servers/plain \
	"{\"listen\":[\"$PLAIN\"],\"automatic_https\":{\"disable\":true},\"routes\":[{\"handle\":[{\"handler\":\"reverse_proxy\",\"upstreams\":[{\"dial\":\"$UPSTREAM\"}]}]}]}"
# (b) the demo's gateway server, pointed at the same upstream.
admin PATCH /config/apps/http/servers/gateway/routes/0/handle/1/upstreams "[{\"dial\":\"$UPSTREAM\"}]"
wait_http "http://$PLAIN/"

COOKIE=$("$WORK/bench" login -gateway "http://$GATEWAY" -email alice@example.com -password demo-password)

# Sanity: the gateway lets the session through and refuses without it.
body=$(curl -sS -f -H "Cookie: $COOKIE" "http://$GATEWAY/")
[ "$body" = "hello, world" ] || { echo "run.sh: signed-in request got: $body" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$GATEWAY/")
[ "$code" = 401 ] || { echo "run.sh: request without a session got $code, want 401" >&2; exit 1; }
body=$(curl -sS -f "http://$PLAIN/")
[ "$body" = "hello, world" ] || { echo "run.sh: plain request got: $body" >&2; exit 1; }

# to_ms converts wrk's "123.45us", "1.23ms" or "1.02s" to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
		printf "%.3f", n
	}'
}

# measure name conns [extra wrk args...]: runs wrk, checks every answer was
# 2xx/3xx, and prints "rps p50ms p99ms".
measure() {
	local name=$1 conns=$2
	shift 2
	local threads=$THREADS
	[ "$conns" -lt "$threads" ] && threads=$conns
	local f="$OUT/wrk-$name-c$conns-$(date +%s%N).txt"
	wrk -t "$threads" -c "$conns" -d "$DURATION" --latency "$@" >"$f"
	if grep -q "Non-2xx or 3xx" "$f" || grep -q "Socket errors" "$f"; then
		echo "run.sh: $name at c=$conns had failed requests:" >&2
		cat "$f" >&2
		exit 1
	fi
	local rps p50 p99
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
	echo "$rps $p50 $p99"
}

echo "warming up ..."
wrk -t 1 -c 8 -d 2s -H "Cookie: $COOKIE" "http://$PLAIN/" >/dev/null
wrk -t 1 -c 8 -d 2s -H "Cookie: $COOKIE" "http://$GATEWAY/" >/dev/null

declare -A SUM RATIOS
for round in $(seq "$ROUNDS"); do
	for c in $CONCURRENCY; do
		read -r prps pp50 pp99 < <(measure plain "$c" -H "Cookie: $COOKIE" "http://$PLAIN/")
		read -r grps gp50 gp99 < <(measure gateway "$c" -H "Cookie: $COOKIE" "http://$GATEWAY/")
		ratio=$(awk -v g="$grps" -v p="$prps" 'BEGIN {printf "%.1f", 100 * g / p}')
		RATIOS[$c]="${RATIOS[$c]:-} $ratio"
		echo "round $round c=$c: plain $prps req/s (p50 $pp50 ms, p99 $pp99 ms); gateway $grps req/s (p50 $gp50 ms, p99 $gp99 ms); ratio $ratio%"
		for k in prps pp50 pp99 grps gp50 gp99; do
			SUM[$c,$k]=$(awk -v a="${SUM[$c,$k]:-0}" -v b="${!k}" 'BEGIN {print a + b}')
		done
	done
done

if [ "$PROFILE" = 1 ]; then
	c=$(echo "$CONCURRENCY" | awk '{print $NF}')
	echo "profiling the gateway at c=$c for 10 s ..."
	wrk -t "$THREADS" -c "$c" -d 12s -H "Cookie: $COOKIE" "http://$GATEWAY/" >/dev/null &
	WRK=$!
	sleep 1
	curl -sS -f -o "$OUT/gateway.pprof" "http://$ADMIN/debug/pprof/profile?seconds=10"
	wait "$WRK"
	go tool pprof -top -nodecount 30 "$WORK/ssogate" "$OUT/gateway.pprof" 2>/dev/null | sed -n '1,40p'
	echo "profile: $OUT/gateway.pprof (binary: go build -o ssogate ./cmd/ssogate from the same tree)"
fi

echo
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(go env GOVERSION); wrk -t$THREADS, ${DURATION} per run, mean of $ROUNDS rounds"
printf '%-6s | %12s | %12s | %7s | %7s | %9s | %9s | %9s | %9s\n' conns "plain req/s" "gateway" ratio "median" "plain p50" "gw p50" "plain p99" "gw p99"
printf '%s\n' "-------+--------------+--------------+---------+---------+-----------+-----------+-----------+----------"
for c in $CONCURRENCY; do
	# ratio: of the mean throughputs; median: of the per-round ratios,
	# which resists a round disturbed by other load on the machine.
	median=$(echo "${RATIOS[$c]}" | tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
	awk -v c="$c" -v n="$ROUNDS" -v med="$median" -v prps="${SUM[$c,prps]}" -v grps="${SUM[$c,grps]}" \
		-v pp50="${SUM[$c,pp50]}" -v gp50="${SUM[$c,gp50]}" -v pp99="${SUM[$c,pp99]}" -v gp99="${SUM[$c,gp99]}" 'BEGIN {
		printf "%-6s | %12.0f | %12.0f | %6.1f%% | %6.1f%% | %6.3f ms | %6.3f ms | %6.3f ms | %6.3f ms\n",
			c, prps / n, grps / n, 100 * grps / prps, med, pp50 / n, gp50 / n, pp99 / n, gp99 / n
	}'
done
echo "(target: gateway >= 90% of plain reverse_proxy; wrk outputs in $OUT)"
