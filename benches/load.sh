#!/usr/bin/env bash
# imgedge load benchmark (issue 7): one run, every figure a ratio against a baseline measured in
# the same run on the same machine. Called by `make bench` after a release build; writes
# BENCHMARKS.md (or $BENCH_OUT).
#
#   cold      every URL unique (width and a no-op param vary) so no cache can answer:
#             the server vs the in-process libvips baseline (benches/baseline.rs) doing the same
#             ops::run calls on the same bytes with as many threads as the server has workers,
#             at concurrency = cores and 8 × cores
#   hit       one URL repeated (an L1 memory hit once the cache is wired), 64 connections:
#             the server vs nginx serving the same bytes as a static file
#   disk      L2 disk hits (only when the server has flags to switch L1 off; see below)
#   overload  cold 12 MP at 4 × (workers + queue) connections: p99 must stay bounded (503s)
#   soak      cold 12 MP at concurrency 16 for BENCH_SOAK_SECONDS: peak RSS
#
# Loopback only; every phase is bounded by wrk's -d (and a timeout around it); the server and
# nginx are started here on ephemeral ports and stopped by PID on exit.
#
# Knobs (environment): BENCH_SECONDS (per phase, default 15), BENCH_SOAK_SECONDS (default 300),
# BENCH_OUT (default BENCHMARKS.md), BENCH_L2_FLAGS (server flags that switch L1 off so repeated
# URLs come from disk; default "-cache-memory 0" when the server has cache flags; empty skips).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
# cargo's output directory: ./target unless CARGO_TARGET_DIR says otherwise.
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/imgedge
CORES=$(nproc)
SECS=${BENCH_SECONDS:-15}
SOAK=${BENCH_SOAK_SECONDS:-300}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
QUEUE=64
WORK=$(mktemp -d /tmp/imgedge-bench.XXXXXX)
# The code measured: taken now, before BENCHMARKS.md (which this run rewrites) changes.
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- . ':(exclude)BENCHMARKS.md' 2>/dev/null || echo " + uncommitted changes")"
SERVER_PID=""
NGINX_PID=""

cleanup() {
	if [ -n "$SERVER_PID" ]; then stop_pid "$SERVER_PID"; fi
	if [ -n "$NGINX_PID" ]; then stop_pid "$NGINX_PID"; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '== %s\n' "$*" >&2; }

free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free port" >&2
	exit 1
}

wait_port() { # port
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listening on $1" >&2
	return 1
}

# CPU seconds (user + system) of a process and its threads.
cpu_of() {
	awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
# Peak RSS in MiB since the last reset_peak.
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------
say "building the baseline and writing the inputs"
cargo bench --locked --bench baseline --no-run >/dev/null 2>&1 || cargo bench --locked --bench baseline --no-run
BASELINE=$(ls -t "$TARGET"/release/deps/baseline-* | grep -v '\.d$' | head -1)
"$BASELINE" write "$WORK/images" >&2

# Cache flags, when this build has them: each server start gets an empty cache directory of
# its own in the temp dir (never ./var/cache).
HAS_CACHE=""
HELP=$("$BIN" -h 2>&1 || true) # -h exits 1, as imaginary's does
case $HELP in *-cache-dir*) HAS_CACHE=1 ;; esac
if [ -z "${BENCH_L2_FLAGS+set}" ] && [ -n "$HAS_CACHE" ]; then
	BENCH_L2_FLAGS="-cache-memory 0"
fi
STARTS=0

start_server() { # extra flags...
	PORT=$(free_port)
	STARTS=$((STARTS + 1))
	local cache=()
	[ -n "$HAS_CACHE" ] && cache=(-cache-dir "$WORK/cache.$STARTS")
	# shellcheck disable=SC2068
	PORT= "$BIN" -a 127.0.0.1 -p "$PORT" -mount "$WORK/images" -grace-period 1 -queue "$QUEUE" \
		"${cache[@]}" $@ >"$WORK/server.out" 2>"$WORK/server.err" &
	SERVER_PID=$!
	wait_port "$PORT"
}

# SIGTERM (graceful, -grace-period 1), then SIGKILL if it is still there after 10 s.
stop_pid() {
	kill "$1" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

stop_server() {
	stop_pid "$SERVER_PID"
	SERVER_PID=""
}

# wrk with a Lua script that makes every URL unique and prints one line of key=value pairs.
cat >"$WORK/unique.lua" <<'LUA'
-- args: path template with {w} (width, cycling from w0 over wn values) and {n} (a counter,
-- unique per request: each thread owns a range)
local threads = {}
function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end
function init(args)
	template = args[1]
	w0 = tonumber(args[2] or "0")
	wn = tonumber(args[3] or "1")
	salt = args[4] or "0"
	counter = 0
end
function request()
	counter = counter + 1
	local n = tid * 10000000 + counter
	-- {n}: this run's salt, then the thread, then the request: never seen by an earlier run
	local unique = string.format("%s%09d", salt, n)
	local path = template:gsub("{w}", tostring(w0 + n % wn)):gsub("{n}", unique)
	return wrk.format("GET", path)
end
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.2f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d\n",
		summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
		latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, e.status,
		e.connect + e.read + e.write + e.timeout))
end
LUA

# run_wrk CONNECTIONS SECONDS URL-TEMPLATE [W0 WN] -> "key=value ..." of the RESULT line
# Each run gets a salt of its own (kept in a file: run_wrk runs in command substitutions), so
# no run repeats a URL an earlier one made. Kept short: minampl is parsed as a float.
run_wrk() {
	local c=$1 d=$2 tmpl=$3 w0=${4:-0} wn=${5:-1}
	local t=$((c < CORES ? c : CORES)) runs
	runs=$(($(cat "$WORK/runs" 2>/dev/null || echo 0) + 1))
	echo "$runs" >"$WORK/runs"
	timeout $((d + 30)) wrk -t "$t" -c "$c" -d "${d}s" --timeout 10s -s "$WORK/unique.lua" \
		"http://127.0.0.1:$PORT" -- "$tmpl" "$w0" "$wn" "$(printf %03d "$runs")" | sed -n 's/^RESULT //p'
}

# measure LABEL PID CONNECTIONS SECONDS TEMPLATE W0 WN [nowarm]: wrk against PORT, CPU and peak
# RSS of PID. Appends "LABEL key=value ... cpu_ms=… rss_mib=…" to $WORK/results.
measure() {
	local label=$1 pid=$2 c=$3 d=$4 tmpl=$5 w0=$6 wn=$7
	# warm-up, not measured (connections, first allocations)
	[ -n "${8:-}" ] || run_wrk "$c" 2 "$tmpl" "$w0" "$wn" >/dev/null
	reset_peak "$pid"
	local cpu0 cpu1 line reqs
	cpu0=$(cpu_of "$pid")
	line=$(run_wrk "$c" "$d" "$tmpl" "$w0" "$wn")
	cpu1=$(cpu_of "$pid")
	reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
	local cpu_ms
	cpu_ms=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" 'BEGIN {c = n ? (b - a) * 1000 / n : 0; printf(c < 1 ? "%.3f" : "%.2f", c)}')
	echo "$label $line cpu_ms=$cpu_ms rss_mib=$(peak_mib "$pid")" | tee -a "$WORK/results" >&2
}

# baseline LABEL SECONDS FILE ENDPOINT QUERY W0 WN
baseline() {
	local label=$1 d=$2 file=$3 endpoint=$4 query=$5 w0=$6 wn=$7
	local q=${query//\{n\}/0000000}
	local line
	line=$(timeout $((d + 60)) "$BASELINE" run "$WORK/images/$file" "$endpoint" "$q" "$CORES" "$d" "$w0:$((w0 + wn))" | sed -n 's/^RESULT //p')
	echo "$label $line" | tee -a "$WORK/results" >&2
}

# merge LABEL: one results line for LABEL from its slices' lines (LABEL#1, LABEL#2, …): requests,
# seconds, non-2xx and errors summed, req/s and CPU per request over the sums, p50 the slices'
# median, p99 and peak RSS their highest.
merge() {
	awk -v l="$1" '
		{ split($1, a, "#") }
		a[1] == l && a[2] != "" {
			n++
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1], n] = kv[2]; keys[kv[1]] = 1 }
		}
		END {
			for (i = 1; i <= n; i++) { req += v["requests", i]; sec += v["seconds", i]; cpu += v["cpu_ms", i] * v["requests", i] }
			out = sprintf("%s requests=%d seconds=%.3f rps=%.2f", l, req, sec, req / sec)
			for (i = 1; i <= n; i++) { # insertion sort (mawk has no asort)
				x = v["p50_ms", i] + 0
				for (j = i - 1; j >= 1 && p50[j] > x; j--) p50[j + 1] = p50[j]
				p50[j + 1] = x
			}
			out = out sprintf(" p50_ms=%.2f", p50[int((n + 1) / 2)])
			hi["p99_ms"] = 0; hi["rss_mib"] = 0; hi["peak_rss_mib"] = 0
			for (i = 1; i <= n; i++) for (k in hi) if (v[k, i] + 0 > hi[k]) hi[k] = v[k, i] + 0
			out = out sprintf(" p99_ms=%.2f", hi["p99_ms"])
			for (k in keys) if (k == "non2xx" || k == "errors") { t = 0; for (i = 1; i <= n; i++) t += v[k, i]; out = out " " k "=" t }
			out = out sprintf(cpu / req < 1 ? " cpu_ms=%.3f" : " cpu_ms=%.2f", cpu / req)
			if ("rss_mib" in keys) out = out " rss_mib=" hi["rss_mib"]
			if ("peak_rss_mib" in keys) out = out " peak_rss_mib=" hi["peak_rss_mib"]
			print out
		}' "$WORK/results" | tee -a "$WORK/results" >&2
}

get() { # key from a results line: get LABEL KEY
	awk -v l="$1" -v k="$2" '$1 == l { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$WORK/results" | tail -1
}

# ---------------------------------------------------------------------------------------------
# Cold: the side-by-side scenarios of issue 7. `minampl` only matters with `sigma` (blur), so it
# changes the URL and the parsed plan (the cache key) without changing the work.
SCENARIOS=(
	"jpeg_300|jpeg_2mp.jpg|resize|width={w}&minampl=0.5{n}|300|40|JPEG 1920×1080 → {300..339} px JPEG"
	"jpeg12_800|jpeg_12mp.jpg|resize|width={w}&minampl=0.5{n}|800|40|JPEG 4000×3000 → {800..839} px JPEG"
	"webp_600|jpeg_2mp.jpg|resize|width={w}&type=webp&minampl=0.5{n}|600|40|JPEG 1920×1080 → {600..639} px WebP"
	"png_300|png_alpha.png|resize|width={w}&minampl=0.5{n}|300|40|PNG RGBA 1200×800 → {300..339} px PNG"
)

start_server
say "server pid $SERVER_PID on 127.0.0.1:$PORT, $CORES cores"
# Does the server cache variants? (X-Cache appears once the cache is wired in.)
u="/resize?width=123&file=jpeg_2mp.jpg"
curl -s -o /dev/null "http://127.0.0.1:$PORT$u"
XCACHE=$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT$u" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" {print $2}')
say "second request of one URL: X-Cache=${XCACHE:-<none>}"

# The baseline and the server take turns in ROUNDS slices of SECS / ROUNDS seconds each: this
# shared machine's speed drifts by several per cent over a minute, and back-to-back phases
# would put that drift into the ratios.
ROUNDS=3
SLICE=$(((SECS + ROUNDS - 1) / ROUNDS))
for s in "${SCENARIOS[@]}"; do
	IFS='|' read -r name file endpoint query w0 wn _ <<<"$s"
	for r in $(seq 1 "$ROUNDS"); do
		say "cold $name, round $r of $ROUNDS: baseline, $CORES threads"
		baseline "base_$name#$r" "$SLICE" "$file" "$endpoint" "$query" "$w0" "$wn"
		for c in "$CORES" $((8 * CORES)); do
			say "cold $name, round $r of $ROUNDS: server, $c connections"
			measure "srv_${name}_c$c#$r" "$SERVER_PID" "$c" "$SLICE" "/$endpoint?$query&file=$file" "$w0" "$wn" \
				"$([ "$r" -gt 1 ] && echo nowarm)"
		done
	done
	merge "base_$name"
	for c in "$CORES" $((8 * CORES)); do merge "srv_${name}_c$c"; done
done

# ---------------------------------------------------------------------------------------------
# Repeated URL vs nginx static: the same bytes. Like the cold rows, the two take turns in ROUNDS
# slices, so that the machine's drift reaches both alike (one after the other, drift of ±15 %
# between minutes went straight into this ratio on a shared machine).
HIT_URL="/resize?width=300&file=jpeg_2mp.jpg"
mkdir -p "$WORK/www"
curl -s -o "$WORK/www/hit.jpg" "http://127.0.0.1:$PORT$HIT_URL"
HIT_BYTES=$(stat -c %s "$WORK/www/hit.jpg")

NGINX_PORT=$(free_port)
cat >"$WORK/nginx.conf" <<EOF
worker_processes $CORES;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	types { image/jpeg jpg; }
	client_body_temp_path $WORK/nginx-tmp;
	proxy_temp_path $WORK/nginx-tmp;
	fastcgi_temp_path $WORK/nginx-tmp;
	uwsgi_temp_path $WORK/nginx-tmp;
	scgi_temp_path $WORK/nginx-tmp;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $WORK/www;
	}
}
EOF
mkdir -p "$WORK/nginx-tmp"
chmod 755 "$WORK" "$WORK/www"
chmod 644 "$WORK/www/hit.jpg"
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
wait_port "$NGINX_PORT"
# nginx's CPU is its workers': sum them through a wrapper pid list
nginx_cpu() { local t=0; for p in $NGINX_PID $(pgrep -P "$NGINX_PID"); do t=$(awk -v a="$t" -v b="$(cpu_of "$p")" 'BEGIN {print a + b}'); done; echo "$t"; }
# measure_nginx LABEL SECONDS [nowarm]: measure's line for nginx (its workers' CPU and RSS)
measure_nginx() {
	local saved=$PORT n0 n1 line reqs rss=0
	PORT=$NGINX_PORT
	[ -n "${3:-}" ] || run_wrk 64 2 "/hit.jpg" >/dev/null
	n0=$(nginx_cpu)
	line=$(run_wrk 64 "$2" "/hit.jpg")
	n1=$(nginx_cpu)
	PORT=$saved
	reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
	for p in $(pgrep -P "$NGINX_PID"); do rss=$((rss + $(peak_mib "$p"))); done
	echo "$1 $line cpu_ms=$(awk -v a="$n0" -v b="$n1" -v n="$reqs" 'BEGIN {printf "%.3f", (b - a) * 1000 / n}') rss_mib=$rss" | tee -a "$WORK/results" >&2
}
for r in $(seq 1 "$ROUNDS"); do
	say "hit, round $r of $ROUNDS: server, 64 connections ($HIT_BYTES bytes)"
	measure "srv_hit#$r" "$SERVER_PID" 64 "$SLICE" "$HIT_URL" 0 1 "$([ "$r" -gt 1 ] && echo nowarm)"
	say "hit, round $r of $ROUNDS: nginx static, 64 connections (master pid $NGINX_PID)"
	measure_nginx "nginx_hit#$r" "$SLICE" "$([ "$r" -gt 1 ] && echo nowarm)"
done
merge srv_hit
merge nginx_hit
stop_pid "$NGINX_PID"
NGINX_PID=""

# ---------------------------------------------------------------------------------------------
# Overload: 4 × (workers + queue) connections of cold 12 MP work.
OVER=$((4 * (CORES + QUEUE)))
say "overload: server, $OVER connections"
measure "srv_overload" "$SERVER_PID" "$OVER" "$SECS" "/resize?width={w}&minampl=0.6{n}&file=jpeg_12mp.jpg" 800 40

# ---------------------------------------------------------------------------------------------
# Soak: cold 12 MP at concurrency 16; peak RSS over the whole run from a fresh server.
stop_server
start_server
say "soak: ${SOAK}s of cold 12 MP at 16 connections (fresh server pid $SERVER_PID)"
line=$(run_wrk 16 "$SOAK" "/resize?width={w}&minampl=0.7{n}&file=jpeg_12mp.jpg" 800 400)
echo "srv_soak $line rss_mib=$(peak_mib "$SERVER_PID")" | tee -a "$WORK/results" >&2

# ---------------------------------------------------------------------------------------------
# L2 disk hits: a server whose memory tier is off, so a repeated URL is read from disk.
if [ -n "${BENCH_L2_FLAGS:-}" ]; then
	stop_server
	# shellcheck disable=SC2086
	start_server $BENCH_L2_FLAGS
	say "disk hits: server with $BENCH_L2_FLAGS, 64 connections"
	curl -s -o /dev/null "http://127.0.0.1:$PORT$HIT_URL"
	measure "srv_disk" "$SERVER_PID" 64 "$SECS" "$HIT_URL" 0 1
fi
stop_server

# ---------------------------------------------------------------------------------------------
# Report.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
VIPS=$(pkg-config --modversion vips 2>/dev/null || echo "?")
{
	cat <<EOF
# Benchmarks

Written by \`make bench\` (benches/load.sh); what is measured and why, and the micro-benchmarks,
are in [docs/performance.md](docs/performance.md). Every figure is a ratio against a baseline
measured in the same run on the same machine; absolute numbers are for context only.

- **Date**: $(date -u '+%Y-%m-%d %H:%M UTC')
- **Command**: \`make bench\` (BENCH_SECONDS=$SECS, BENCH_SOAK_SECONDS=$SOAK)
- **Machine**: $CPU_MODEL, $CORES cores, $MEM, $(uname -sr), libvips $VIPS
- **Commit**: $COMMIT
- **Server**: \`imgedge -mount DIR -queue $QUEUE\` (workers = $CORES, request threads = $((2 * CORES)), libvips 1 thread per image);
  wrk runs on the same cores. Variant cache: $( [ -n "$XCACHE" ] && echo "present (X-Cache: $XCACHE on a repeated URL)" || echo "**not wired in**: a repeated URL is transformed every time")

## Cold transforms vs in-process libvips

Every request is a new URL (width cycles over 40 values and a no-op param is unique), so nothing
is cached. Baseline: \`benches/baseline.rs\`, $CORES threads calling \`ops::run\` on the same bytes
with the same parameters. Throughput ratio = server req/s ÷ baseline req/s (target ≥ 0.91, i.e.
overhead ≤ 10 %); CPU ratio = server CPU ms per request ÷ baseline's. The baseline and the two
server rows take turns in $ROUNDS rounds of $SLICE s each, so the machine's drift reaches all
three alike; req/s and CPU are over the rounds' sums, p50 the rounds' median, p99 and RSS their
highest.

| scenario | baseline req/s | conns | server req/s | **throughput ratio** | p50 ms | p99 ms | CPU ms/req (server / baseline) | **CPU ratio** | peak RSS MiB | non-2xx |
|---|---|---|---|---|---|---|---|---|---|---|
EOF
	for s in "${SCENARIOS[@]}"; do
		IFS='|' read -r name _ _ _ _ _ desc <<<"$s"
		b=$(get "base_$name" rps)
		bc=$(get "base_$name" cpu_ms)
		for c in "$CORES" $((8 * CORES)); do
			l="srv_${name}_c$c"
			echo "| $desc | $b | $c | $(get "$l" rps) | **$(ratio "$(get "$l" rps)" "$b")** | $(get "$l" p50_ms) | $(get "$l" p99_ms) | $(get "$l" cpu_ms) / $bc | **$(ratio "$(get "$l" cpu_ms)" "$bc")** | $(get "$l" rss_mib) | $(get "$l" non2xx) |"
		done
		echo "| ↳ baseline latency | | $CORES threads | | | $(get "base_$name" p50_ms) | $(get "base_$name" p99_ms) | | | $(get "base_$name" peak_rss_mib) | |"
	done
	cat <<EOF

## Repeated URL vs nginx static file

One URL (\`$HIT_URL\`, $HIT_BYTES bytes) at 64 connections; nginx $(nginx -v 2>&1 | sed 's/.*\///') serves the same
bytes from a file ($CORES workers, sendfile, no access log). The server (its memory tier as the cold
phases left it) and nginx take turns in $ROUNDS rounds of $SLICE s, summed as for the cold rows.
Target: ratio ≥ 0.8, p99 ≤ 2 ms.

| server | req/s | **ratio vs nginx** | p50 ms | p99 ms | CPU ms/req | peak RSS MiB | non-2xx |
|---|---|---|---|---|---|---|---|
| nginx static | $(get nginx_hit rps) | 1.00 | $(get nginx_hit p50_ms) | $(get nginx_hit p99_ms) | $(get nginx_hit cpu_ms) | $(get nginx_hit rss_mib) | $(get nginx_hit non2xx) |
| imgedge | $(get srv_hit rps) | **$(ratio "$(get srv_hit rps)" "$(get nginx_hit rps)")** | $(get srv_hit p50_ms) | $(get srv_hit p99_ms) | $(get srv_hit cpu_ms) | $(get srv_hit rss_mib) | $(get srv_hit non2xx) |
EOF
	if [ -n "${BENCH_L2_FLAGS:-}" ]; then
		echo "| imgedge, L2 disk hits ($BENCH_L2_FLAGS) | $(get srv_disk rps) | **$(ratio "$(get srv_disk rps)" "$(get nginx_hit rps)")** | $(get srv_disk p50_ms) | $(get srv_disk p99_ms) | $(get srv_disk cpu_ms) | $(get srv_disk rss_mib) | $(get srv_disk non2xx) |"
	else
		echo
		echo "L2 disk hits: not measured in this run (set BENCH_L2_FLAGS to the server flags that turn the memory tier off)."
	fi
	cat <<EOF

## Overload and soak

| phase | conns | seconds | req/s | p50 ms | p99 ms | non-2xx (503) | peak RSS MiB |
|---|---|---|---|---|---|---|---|
| overload: cold 12 MP → 800 px | $OVER | $SECS | $(get srv_overload rps) | $(get srv_overload p50_ms) | $(get srv_overload p99_ms) | $(get srv_overload non2xx) | $(get srv_overload rss_mib) |
| soak: cold 12 MP → 800 px (fresh server) | 16 | $SOAK | $(get srv_soak rps) | $(get srv_soak p50_ms) | $(get srv_soak p99_ms) | $(get srv_soak non2xx) | $(get srv_soak rss_mib) |

Targets: overload p99 bounded (queue + 503); soak peak RSS < 600 MiB + the configured L1 size.

## Raw results

\`\`\`
$(cat "$WORK/results")
\`\`\`
EOF
} >"$OUT"
say "wrote $OUT"
