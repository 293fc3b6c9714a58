#!/usr/bin/env bash
# Side-by-side throughput of plain Caddy reverse_proxy and the same with
# sso_gateway in front (with a valid session cookie), in one run, on
# loopback, against one tiny upstream.
#
# One `ssogate demo` process (built from cmd/ssogate) serves them all:
#   gateway  the demo's server: sso_gateway + reverse_proxy
#   plain    a second server added through Caddy's admin API: reverse_proxy only
#   headers  a third one (see below)
# All proxy to `bench upstream` (a fixed 13-byte answer), so the numbers
# compare the proxies, not an application. The session cookie comes from
# a real sign-in through the demo SAML IdP (`bench login`); every server gets
# the same requests, cookie included, so only the gateway's work differs.
#
# Each round measures every load in LOAD: "quiet" (nothing else happens)
# and "scim" (`bench scim` plays an IdP syncing the org's directory at
# SCIM_RATE changes/s — user PATCHes and creates, group membership adds and
# removes, all of users other than the signed-in one — during both the
# plain and the gateway measurement). The table also counts the gateway's
# full session re-checks (ssogate_recheck_cache_total{result="miss"} from
# Caddy's /metrics): writes about other users must not cause any (the
# load's set-up, which creates groups each round, may: a new group name is
# an org change). One SCIM token (`bench scim-token`) serves all rounds.
#
# A third server, "headers" (HEADERS_BASELINE=1), is plain reverse_proxy
# that sets the very identity headers the gateway sends (read back from
# the upstream): it tells what carrying those headers through
# reverse_proxy and the upstream costs from what the gateway's own work
# (cookie, re-check cache, headers, placeholders) costs.
#
# Each measurement also reads the CPU time that the proxies' process and
# the upstream used, per request: on a machine shared with other work it
# moves far less than the throughput does. Under the "scim" load, the CPU
# the SCIM changes take (measured for DURATION with no requests, each
# round) is taken out, so that it is not charged to whichever proxy served
# fewer requests in the same time. Every other round the gateway goes
# first.
#
# Usage: examples/bench/run.sh
# Environment:
#   LOAD         loads to measure each round, default "quiet scim"
#   SCIM_RATE    SCIM changes per second of the "scim" load, default 20
#   STORAGE      the sso store: badger (default, in the temp dir) or
#                postgres
#   PG_DSN       with STORAGE=postgres: connection string of a database to
#                use (its `ssogate` schema is created or reused); without
#                it, a throwaway PostgreSQL server is started in a temp dir
#                on port BASE_PORT+6 (as the `postgres` user when run as
#                root, since initdb refuses root) and removed at exit
#   PG_BIN       PostgreSQL's binaries, default /usr/lib/postgresql/15/bin
#                (Debian's `postgresql` package)
#   SIGNED_IDENTITY  1 (default): the demo's gateway, which also sends the
#                identity as a signed JWT (signed_identity); 0: sso_gateway
#                with its defaults (identity headers only)
#   HEADERS_BASELINE  1 (default): also measure the "headers" server; 0: not
#   CLIENT_HEADERS  bare (default): wrk's own request, the session cookie
#                its only header; browser: also the thirteen headers a
#                desktop Chrome sends with a page navigation (User-Agent,
#                Accept, Sec-Fetch-*, …), as real traffic carries them
#   GATEWAY_HANDLER  JSON of the sso_gateway handler to measure instead
#                (overrides SIGNED_IDENTITY), e.g. the handler with some
#                fields of its "headers" object set to "-" to send fewer
#                identity headers; the sanity checks below refuse a
#                handler that does not let the session through
#   CONCURRENCY  connections to test, default "1 16 64"
#   DURATION     wrk duration per measurement, default 10s
#   THREADS      wrk threads, default 1 (the machine is small; wrk must not
#                take the CPU the proxies need)
#   ROUNDS       how many times each pair is measured (interleaved), default 3;
#                the table gives the ratio of the means and the median of
#                the per-round ratios
#   BASE_PORT    first of eight loopback ports used, default 18080
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
LOAD=${LOAD:-"quiet scim"}
SCIM_RATE=${SCIM_RATE:-20}
STORAGE=${STORAGE:-badger}
PG_DSN=${PG_DSN:-}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
SIGNED_IDENTITY=${SIGNED_IDENTITY:-1}
GATEWAY_HANDLER=${GATEWAY_HANDLER:-}
HEADERS_BASELINE=${HEADERS_BASELINE:-1}
CLIENT_HEADERS=${CLIENT_HEADERS:-bare}

for l in $LOAD; do
	case $l in quiet | scim) ;; *) echo "run.sh: LOAD: unknown load $l (want quiet, scim)" >&2; exit 1 ;; esac
done
case $STORAGE in badger | postgres) ;; *) echo "run.sh: STORAGE=$STORAGE: want badger or postgres" >&2; exit 1 ;; esac
case $SIGNED_IDENTITY in 0 | 1) ;; *) echo "run.sh: SIGNED_IDENTITY=$SIGNED_IDENTITY: want 0 or 1" >&2; exit 1 ;; esac
case $HEADERS_BASELINE in 0 | 1) ;; *) echo "run.sh: HEADERS_BASELINE=$HEADERS_BASELINE: want 0 or 1" >&2; exit 1 ;; esac
case $CLIENT_HEADERS in bare | browser) ;; *) echo "run.sh: CLIENT_HEADERS=$CLIENT_HEADERS: want bare or browser" >&2; exit 1 ;; esac

if ! command -v wrk >/dev/null 2>&1; then
	echo "run.sh: wrk is not installed. On Debian/Ubuntu: sudo apt-get install -y wrk" >&2
	exit 1
fi
command -v curl >/dev/null 2>&1 || { echo "run.sh: curl is required" >&2; exit 1; }

WORK=$(mktemp -d -t ssogate-bench-XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PIDS=()
PGDIR=
SCIM_PID=
cleanup() {
	[ -n "$SCIM_PID" ] && kill "$SCIM_PID" 2>/dev/null
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK/data"
	if [ -n "$PGDIR" ]; then
		as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
		rm -rf "$PGDIR"
	fi
}
as_pg() { # runs a PostgreSQL command as the postgres user when we are root
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
trap cleanup EXIT

GATEWAY=127.0.0.1:$((BASE_PORT))
IDP=127.0.0.1:$((BASE_PORT + 1))
DEMO_UPSTREAM=127.0.0.1:$((BASE_PORT + 2))
ADMIN=127.0.0.1:$((BASE_PORT + 3))
PLAIN=127.0.0.1:$((BASE_PORT + 4))
UPSTREAM=127.0.0.1:$((BASE_PORT + 5))
PG_PORT=$((BASE_PORT + 6))
HEADERS=127.0.0.1:$((BASE_PORT + 7))

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

if [ "$STORAGE" = postgres ] && [ -z "$PG_DSN" ]; then
	[ -x "$PG_BIN/initdb" ] || { echo "run.sh: no PostgreSQL in $PG_BIN (Debian: apt-get install postgresql; or give PG_DSN)" >&2; exit 1; }
	echo "starting a throwaway PostgreSQL on 127.0.0.1:$PG_PORT ..."
	# Its own temp dir: the postgres user must own it, and cannot enter $WORK.
	PGDIR=$(mktemp -d -t ssogate-bench-pg-XXXXXX)
	[ "$(id -u)" = 0 ] && chown postgres: "$PGDIR"
	as_pg "$PG_BIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust >"$OUT/initdb.log" 2>&1 ||
		{ cat "$OUT/initdb.log" >&2; exit 1; }
	as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
		-o "-p $PG_PORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null ||
		{ cat "$PGDIR/server.log" >&2; exit 1; }
	PG_DSN="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
fi

"$WORK/bench" upstream -listen "$UPSTREAM" &
UPSTREAM_PID=$!
PIDS+=($!)
# The connection string goes through the environment, never the command
# line (which any local user can read).
SSOGATE_DATABASE_URL=$PG_DSN "$WORK/ssogate" demo --gateway "$GATEWAY" --idp "$IDP" --upstream "$DEMO_UPSTREAM" \
	--admin "$ADMIN" --data "$WORK/data" --storage "$STORAGE" >"$OUT/demo.log" 2>&1 &
SSOGATE_PID=$!
PIDS+=($!)
wait_http "http://$UPSTREAM/"
for _ in $(seq 600); do
	grep -q "Ready: open" "$OUT/demo.log" && break
	kill -0 "${PIDS[1]}" 2>/dev/null || { cat "$OUT/demo.log" >&2; exit 1; }
	sleep 0.1
done
grep -q "Ready: open" "$OUT/demo.log" || { echo "run.sh: demo did not start" >&2; cat "$OUT/demo.log" >&2; exit 1; }

admin() { # method path json
	curl -sS -f -X "$1" -H 'Content-Type: application/json' -d "$3" "http://$ADMIN$2" >/dev/null
}
# (a) plain reverse_proxy, a server of its own in the same Caddy.
admin PUT /config/apps/http/servers/plain \
	"{\"listen\":[\"$PLAIN\"],\"automatic_https\":{\"disable\":true},\"routes\":[{\"handle\":[{\"handler\":\"reverse_proxy\",\"upstreams\":[{\"dial\":\"$UPSTREAM\"}]}]}]}"
# (b) the demo's gateway server, pointed at the same upstream.
admin PATCH /config/apps/http/servers/gateway/routes/0/handle/1/upstreams "[{\"dial\":\"$UPSTREAM\"}]"
if [ -n "$GATEWAY_HANDLER" ]; then
	admin PATCH /config/apps/http/servers/gateway/routes/0/handle/0 "$GATEWAY_HANDLER"
elif [ "$SIGNED_IDENTITY" = 0 ]; then
	admin PATCH /config/apps/http/servers/gateway/routes/0/handle/0 '{"handler":"sso_gateway"}'
fi
wait_http "http://$PLAIN/"

COOKIE=$("$WORK/bench" login -gateway "http://$GATEWAY" -email alice@example.com -password demo-password)
# REQ is the request headers every load sends, to every server alike.
REQ=(-H "Cookie: $COOKIE")
if [ "$CLIENT_HEADERS" = browser ]; then
	REQ+=(-H 'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"' -H 'sec-ch-ua-mobile: ?0'
		-H 'sec-ch-ua-platform: "Linux"' -H 'Upgrade-Insecure-Requests: 1'
		-H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
		-H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7'
		-H 'Sec-Fetch-Site: same-origin' -H 'Sec-Fetch-Mode: navigate' -H 'Sec-Fetch-User: ?1' -H 'Sec-Fetch-Dest: document'
		-H "Referer: http://$GATEWAY/" -H 'Accept-Encoding: gzip, deflate, br, zstd' -H 'Accept-Language: en-US,en;q=0.9')
fi

# Sanity: the gateway lets the session through and refuses without it.
body=$(curl -sS -f -H "Cookie: $COOKIE" "http://$GATEWAY/")
[ "$body" = "hello, world" ] || { echo "run.sh: signed-in request got: $body" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$GATEWAY/")
[ "$code" = 401 ] || { echo "run.sh: request without a session got $code, want 401" >&2; exit 1; }
body=$(curl -sS -f "http://$PLAIN/")
[ "$body" = "hello, world" ] || { echo "run.sh: plain request got: $body" >&2; exit 1; }

if [ "$HEADERS_BASELINE" = 1 ]; then
	# (c) plain reverse_proxy setting the identity headers the gateway sends.
	idh=$(curl -sS -f -H "Cookie: $COOKIE" "http://$GATEWAY/identity-headers")
	case $idh in *X-Sso-User*) ;; *) echo "run.sh: the upstream saw no identity headers: $idh" >&2; exit 1 ;; esac
	admin PUT /config/apps/http/servers/headers \
		"{\"listen\":[\"$HEADERS\"],\"automatic_https\":{\"disable\":true},\"routes\":[{\"handle\":[{\"handler\":\"headers\",\"request\":{\"set\":$idh}},{\"handler\":\"reverse_proxy\",\"upstreams\":[{\"dial\":\"$UPSTREAM\"}]}]}]}"
	wait_http "http://$HEADERS/"
	[ "$(curl -sS -f "http://$HEADERS/identity-headers")" = "$idh" ] || { echo "run.sh: the headers server sends other headers" >&2; exit 1; }
fi

# to_ms converts wrk's "123.45us", "1.23ms" or "1.02s" to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
		printf "%.3f", n
	}'
}

# cpu_ticks prints the CPU time (user + system, in clock ticks) that the
# proxies' process and the upstream have used so far.
cpu_ticks() {
	cat "/proc/$SSOGATE_PID/stat" "/proc/$UPSTREAM_PID/stat" | awk '{sub(/^.*\) /, ""); t += $12 + $13} END {print t}'
}

# upstream_ticks is cpu_ticks for the upstream alone: what reading the
# requests it is sent costs the application.
upstream_ticks() {
	awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$UPSTREAM_PID/stat"
}

# measure name conns [extra wrk args...]: runs wrk, checks every answer was
# 2xx/3xx, and prints "rps p50ms p99ms cpu ucpu" where cpu is the CPU time
# of the proxies and the upstream per request, in µs: what the request
# cost, which other load on the machine changes far less than the
# throughput; ucpu is the upstream's share of it.
measure() {
	local name=$1 conns=$2
	shift 2
	local threads=$THREADS
	[ "$conns" -lt "$threads" ] && threads=$conns
	local f="$OUT/wrk-$name-c$conns-$(date +%s%N).txt"
	local t0 t1 s0 s1 u0 u1
	t0=$(cpu_ticks)
	u0=$(upstream_ticks)
	s0=$(date +%s%N)
	wrk -t "$threads" -c "$conns" -d "$DURATION" --latency "$@" >"$f"
	t1=$(cpu_ticks)
	u1=$(upstream_ticks)
	s1=$(date +%s%N)
	# Less the background's share (BG_TICKS per second, see idle_ticks).
	t1=$(awk -v t0="$t0" -v t1="$t1" -v bg="${BG_TICKS:-0}" -v ns=$((s1 - s0)) 'BEGIN {printf "%.0f", t1 - bg * ns / 1e9}')
	if grep -q "Non-2xx or 3xx" "$f" || grep -q "Socket errors" "$f"; then
		echo "run.sh: $name at c=$conns had failed requests:" >&2
		cat "$f" >&2
		exit 1
	fi
	local rps p50 p99 cpu ucpu
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
	cpu=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" '/ requests in / {printf "%.2f", t * 1e6 / hz / $1}' "$f")
	ucpu=$(awk -v t="$((u1 - u0))" -v hz="$(getconf CLK_TCK)" '/ requests in / {printf "%.2f", t * 1e6 / hz / $1}' "$f")
	echo "$rps $p50 $p99 $cpu $ucpu"
}

if [[ " $LOAD " == *" scim "* ]]; then
	# One SCIM token for every round: each rotation is an org write. Through
	# the environment, never the command line.
	tokens=$("$WORK/bench" scim-token -admin "http://$ADMIN" -org example)
	export BENCH_SCIM_BASE BENCH_SCIM_TOKEN
	BENCH_SCIM_BASE=$(echo "$tokens" | sed -n 's/^BENCH_SCIM_BASE=//p')
	BENCH_SCIM_TOKEN=$(echo "$tokens" | sed -n 's/^BENCH_SCIM_TOKEN=//p')
	[ -n "$BENCH_SCIM_TOKEN" ] || { echo "run.sh: no SCIM token" >&2; exit 1; }
fi

echo "warming up ..."
wrk -t 1 -c 8 -d 2s "${REQ[@]}" "http://$PLAIN/" >/dev/null
wrk -t 1 -c 8 -d 2s "${REQ[@]}" "http://$GATEWAY/" >/dev/null
[ "$HEADERS_BASELINE" = 1 ] && wrk -t 1 -c 8 -d 2s "${REQ[@]}" "http://$HEADERS/" >/dev/null

# idle_ticks sets BG_TICKS to the CPU ticks per second that the proxies'
# process and the upstream use while no request comes (the SCIM load's).
idle_ticks() {
	local t0 t1 s0 s1
	t0=$(cpu_ticks)
	s0=$(date +%s%N)
	sleep "$DURATION"
	t1=$(cpu_ticks)
	s1=$(date +%s%N)
	BG_TICKS=$(awk -v t=$((t1 - t0)) -v ns=$((s1 - s0)) 'BEGIN {printf "%.2f", t * 1e9 / ns}')
}

# rechecks prints the gateway's full session re-checks so far.
rechecks() {
	curl -sS -f "http://$ADMIN/metrics" | awk '/^ssogate_recheck_cache_total\{result="miss"\}/ {print $2 + 0; found = 1} END {if (!found) print 0}'
}

# scim_start / scim_stop run the "scim" load around a pair of measurements;
# scim_stop fails the run if any change failed, and sets SCIM_DONE to the
# rate delivered.
scim_start() {
	local log="$OUT/scim-$(date +%s%N).log"
	"$WORK/bench" scim -admin "http://$ADMIN" -org example -rate "$SCIM_RATE" >"$log" 2>&1 &
	SCIM_PID=$!
	SCIM_LOG=$log
	for _ in $(seq 600); do
		grep -q "scim: running" "$log" && return 0
		kill -0 "$SCIM_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "run.sh: the SCIM load did not start:" >&2
	cat "$log" >&2
	exit 1
}
scim_stop() {
	kill -TERM "$SCIM_PID"
	if ! wait "$SCIM_PID"; then
		SCIM_PID=
		echo "run.sh: the SCIM load failed:" >&2
		cat "$SCIM_LOG" >&2
		exit 1
	fi
	SCIM_PID=
	SCIM_DONE=$(awk '/^scim: [0-9]+ changes/ {gsub(/[(]|\/s\),?/, "", $7); print $7}' "$SCIM_LOG")
}

declare -A SUM RATIOS CPURATIOS HRATIOS HCPURATIOS GHCPURATIOS RECHECKS SCIMRATE
for round in $(seq "$ROUNDS"); do
	for load in $LOAD; do
		for c in $CONCURRENCY; do
			BG_TICKS=0
			if [ "$load" = scim ]; then
				scim_start
				idle_ticks
			fi
			# Every other round the gateway goes first, so that a drift in
			# the machine's other load favours neither.
			if [ $((round % 2)) = 1 ]; then
				read -r prps pp50 pp99 pcpu pucpu < <(measure plain "$c" "${REQ[@]}" "http://$PLAIN/")
			fi
			before=$(rechecks)
			read -r grps gp50 gp99 gcpu gucpu < <(measure gateway "$c" "${REQ[@]}" "http://$GATEWAY/")
			rc=$(($(rechecks) - before))
			if [ "$HEADERS_BASELINE" = 1 ]; then
				read -r hrps hp50 hp99 hcpu hucpu < <(measure headers "$c" "${REQ[@]}" "http://$HEADERS/")
				[ -n "$hrps" ] || exit 1
			fi
			if [ $((round % 2)) = 0 ]; then
				read -r prps pp50 pp99 pcpu pucpu < <(measure plain "$c" "${REQ[@]}" "http://$PLAIN/")
			fi
			[ -n "$prps" ] && [ -n "$grps" ] || exit 1 # measure said why
			extra=
			if [ "$load" = scim ]; then
				scim_stop
				SCIMRATE[$load,$c]="${SCIMRATE[$load,$c]:-} $SCIM_DONE"
				extra=", SCIM $SCIM_DONE changes/s taking $BG_TICKS CPU ticks/s"
			fi
			ratio=$(awk -v g="$grps" -v p="$prps" 'BEGIN {printf "%.1f", 100 * g / p}')
			cratio=$(awk -v g="$gcpu" -v p="$pcpu" 'BEGIN {printf "%.1f", 100 * p / g}')
			RATIOS[$load,$c]="${RATIOS[$load,$c]:-} $ratio"
			CPURATIOS[$load,$c]="${CPURATIOS[$load,$c]:-} $cratio"
			RECHECKS[$load,$c]=$((${RECHECKS[$load,$c]:-0} + rc))
			hextra=
			if [ "$HEADERS_BASELINE" = 1 ]; then
				HRATIOS[$load,$c]="${HRATIOS[$load,$c]:-} $(awk -v h="$hrps" -v p="$prps" 'BEGIN {printf "%.1f", 100 * h / p}')"
				HCPURATIOS[$load,$c]="${HCPURATIOS[$load,$c]:-} $(awk -v h="$hcpu" -v p="$pcpu" 'BEGIN {printf "%.1f", 100 * p / h}')"
				GHCPURATIOS[$load,$c]="${GHCPURATIOS[$load,$c]:-} $(awk -v h="$hcpu" -v g="$gcpu" 'BEGIN {printf "%.1f", 100 * h / g}')"
				SUM[$load,$c,hrps]=$(awk -v a="${SUM[$load,$c,hrps]:-0}" -v b="$hrps" 'BEGIN {print a + b}')
				SUM[$load,$c,hcpu]=$(awk -v a="${SUM[$load,$c,hcpu]:-0}" -v b="$hcpu" 'BEGIN {print a + b}')
				SUM[$load,$c,hucpu]=$(awk -v a="${SUM[$load,$c,hucpu]:-0}" -v b="$hucpu" 'BEGIN {print a + b}')
				hextra="; headers $hrps req/s ($hcpu µs CPU/req)"
			fi
			echo "round $round $load c=$c: plain $prps req/s (p50 $pp50 ms, p99 $pp99 ms, $pcpu µs CPU/req); gateway $grps req/s (p50 $gp50 ms, p99 $gp99 ms, $gcpu µs CPU/req); ratio $ratio%, CPU ratio $cratio%; $rc full re-checks$extra$hextra"
			for k in prps pp50 pp99 grps gp50 gp99 pcpu gcpu pucpu gucpu; do
				SUM[$load,$c,$k]=$(awk -v a="${SUM[$load,$c,$k]:-0}" -v b="${!k}" 'BEGIN {print a + b}')
			done
		done
	done
done

if [ "$PROFILE" = 1 ]; then
	c=$(echo "$CONCURRENCY" | awk '{print $NF}')
	load=$(echo "$LOAD" | awk '{print $NF}')
	echo "profiling the gateway at c=$c under the $load load for 10 s ..."
	[ "$load" = scim ] && scim_start
	wrk -t "$THREADS" -c "$c" -d 12s "${REQ[@]}" "http://$GATEWAY/" >/dev/null &
	WRK=$!
	sleep 1
	curl -sS -f -o "$OUT/gateway.pprof" "http://$ADMIN/debug/pprof/profile?seconds=10"
	wait "$WRK"
	[ "$load" = scim ] && scim_stop
	go tool pprof -top -nodecount 30 "$WORK/ssogate" "$OUT/gateway.pprof" 2>/dev/null | sed -n '1,40p'
	echo "profile: $OUT/gateway.pprof (binary: go build -o ssogate ./cmd/ssogate from the same tree)"
fi

median() { # of the numbers in $1
	echo "$1" | tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {if (NR) printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

echo
gwcfg="sso_gateway with signed_identity (the demo's)"
[ "$SIGNED_IDENTITY" = 0 ] && gwcfg="sso_gateway with its defaults"
[ -n "$GATEWAY_HANDLER" ] && gwcfg="sso_gateway as GATEWAY_HANDLER sets it"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(go env GOVERSION); wrk -t$THREADS, ${DURATION} per run, mean of $ROUNDS rounds"
echo "storage: $STORAGE; gateway: $gwcfg; scim load: $SCIM_RATE changes/s requested; client headers: $CLIENT_HEADERS"
printf '%-6s | %-5s | %11s | %11s | %7s | %7s | %-13s | %9s | %9s | %9s | %9s | %9s | %9s | %9s | %9s\n' load conns "plain req/s" "gateway" ratio "median" "rounds" "plain p50" "gw p50" "plain p99" "gw p99" "plain CPU" "gw CPU" "CPU ratio" "re-checks"
printf '%s\n' "-------+-------+-------------+-------------+---------+---------+---------------+-----------+-----------+-----------+-----------+-----------+-----------+-----------+----------"
for load in $LOAD; do
	for c in $CONCURRENCY; do
		# ratio: of the mean throughputs; median: of the per-round ratios,
		# which resists a round disturbed by other load on the machine;
		# rounds: the lowest and highest round, how noisy it was.
		med=$(median "${RATIOS[$load,$c]}")
		spread=$(echo "${RATIOS[$load,$c]}" | tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s%%", lo, hi}')
		cmed=$(median "${CPURATIOS[$load,$c]}")
		awk -v load="$load" -v c="$c" -v n="$ROUNDS" -v med="$med" -v spread="$spread" -v rc="${RECHECKS[$load,$c]}" -v cmed="$cmed" \
			-v prps="${SUM[$load,$c,prps]}" -v grps="${SUM[$load,$c,grps]}" -v pcpu="${SUM[$load,$c,pcpu]}" -v gcpu="${SUM[$load,$c,gcpu]}" \
			-v pp50="${SUM[$load,$c,pp50]}" -v gp50="${SUM[$load,$c,gp50]}" -v pp99="${SUM[$load,$c,pp99]}" -v gp99="${SUM[$load,$c,gp99]}" 'BEGIN {
			printf "%-6s | %-5s | %11.0f | %11.0f | %6.1f%% | %6.1f%% | %-13s | %6.3f ms | %6.3f ms | %6.3f ms | %6.3f ms | %6.1f µs | %6.1f µs | %8.1f%% | %9d\n",
				load, c, prps / n, grps / n, 100 * grps / prps, med, spread, pp50 / n, gp50 / n, pp99 / n, gp99 / n, pcpu / n, gcpu / n, cmed, rc
		}'
	done
done
if [ "$HEADERS_BASELINE" = 1 ]; then
	echo
	echo "plain reverse_proxy setting the gateway's identity headers (\"headers\"), beside plain and beside the gateway:"
	printf '%-6s | %-5s | %13s | %12s | %12s | %15s | %22s | %30s\n' load conns "headers req/s" "vs plain" "headers CPU" "CPU vs plain" "gateway CPU vs headers" "upstream CPU plain/gw/headers"
	printf '%s\n' "-------+-------+---------------+--------------+--------------+-----------------+------------------------+-------------------------------"
	for load in $LOAD; do
		for c in $CONCURRENCY; do
			awk -v load="$load" -v c="$c" -v n="$ROUNDS" -v hrps="${SUM[$load,$c,hrps]}" -v hcpu="${SUM[$load,$c,hcpu]}" \
				-v pu="${SUM[$load,$c,pucpu]}" -v gu="${SUM[$load,$c,gucpu]}" -v hu="${SUM[$load,$c,hucpu]}" \
				-v hr="$(median "${HRATIOS[$load,$c]}")" -v hc="$(median "${HCPURATIOS[$load,$c]}")" -v gh="$(median "${GHCPURATIOS[$load,$c]}")" 'BEGIN {
				printf "%-6s | %-5s | %13.0f | %11.1f%% | %9.1f µs | %14.1f%% | %21.1f%% | %30s\n", load, c, hrps / n, hr, hcpu / n, hc, gh, sprintf("%.1f / %.1f / %.1f µs", pu / n, gu / n, hu / n)
			}'
		done
	done
	echo "(medians of the rounds' ratios; CPU ratios as above: the slower one's CPU per request in the denominator;"
	echo " upstream CPU: the upstream's share of the CPU per request, mean: what reading the identity headers costs the application,"
	echo " which no proxy can take away)"
else
	for load in $LOAD; do
		for c in $CONCURRENCY; do
			awk -v load="$load" -v c="$c" -v n="$ROUNDS" -v pu="${SUM[$load,$c,pucpu]}" -v gu="${SUM[$load,$c,gucpu]}" 'BEGIN {
				printf "upstream CPU per request, %s c=%s: plain %.1f µs, gateway %.1f µs\n", load, c, pu / n, gu / n
			}'
		done
	done
fi
for c in $CONCURRENCY; do
	[ -n "${SCIMRATE[scim,$c]:-}" ] && echo "scim load at c=$c: $(median "${SCIMRATE[scim,$c]}") changes/s delivered (median of the rounds)"
done
echo "ratio: of the mean req/s; median: of the rounds' ratios; rounds: the lowest and highest round's ratio (how noisy the machine was)"
echo "CPU: CPU time of the proxies' process and the upstream per request (less the SCIM load's), mean; CPU ratio: plain's over the gateway's, median of the rounds"
echo "re-checks: full session re-checks during the gateway's measurements, all rounds (the rest were served from the re-check cache)"
echo "(target: gateway >= 95% of plain reverse_proxy with Badger, quiet and under the SCIM load; >= 90% with PostgreSQL;"
echo " the \"headers\" ratio is what carrying the identity headers costs without any gateway; wrk outputs in $OUT)"
