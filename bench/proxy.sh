#!/usr/bin/env bash
# bench/proxy.sh — pipit's built-in proxy against nginx and HAProxy, in one
# run on this machine, with the same two sample-app backends and the same
# 95/5 split, measured with wrk. Prints a table and pipit's ratios, and
# writes them into the "## Proxy" section of docs/benchmarks.md.
#
#   bash bench/proxy.sh
#
# Settings (environment): DURATION (seconds per measurement, default 10),
# ROUNDS (default 5: the targets are measured in turn, ROUNDS times, and
# the median is reported, so a burst of load from elsewhere on the machine
# does not fall on one target only), THREADS (2), CONNECTIONS (64).
# Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=2

log() { echo "bench/proxy: $*" >&2; }

# --- tools --------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]} from Debian"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

log "building pipit and the proxy harness"
go build -o "$work/pipit" ./cmd/pipit
go build -o "$work/harness" ./bench/proxy
go build -o "$work/baseline" ./bench/proxy/baseline

# free_port prints a TCP port on 127.0.0.1 that nothing listens on, below
# the kernel's ephemeral range, so that no outgoing connection (wrk's, or a
# proxy's to the backends) holds it as its local port when it is bound.
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
	local port
	while :; do
		port=$((10000 + RANDOM % (ephemeral_low - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
}

# start NAME CMD...: runs CMD in the background, logging to $work/NAME.log;
# its process ID is kept in pid[NAME].
declare -A pid
start() {
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	pid[$name]=$!
}

# cpu_ticks PID: the CPU time, in clock ticks, that the process and its
# child processes (nginx's workers) have used so far: user, then system
# (the kernel's work on the process's behalf: its socket reads and writes).
cpu_ticks() {
	local user=0 system=0 p f
	for p in "$1" $(pgrep -P "$1" || true); do
		# Fields 14 and 15 of stat, counted after the command's ")".
		f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		set -- $f
		user=$((user + ${12}))
		system=$((system + ${13}))
	done
	echo "$user $system"
}

# wait_listening NAME ADDR: waits until something listens on ADDR, for 10
# seconds at most; otherwise shows NAME's log and fails.
wait_listening() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/${2%:*}/${2##*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	log "$1 does not listen on $2; its log:"
	cat "$work/$1.log" >&2
	exit 1
}

# --- backends and proxies --------------------------------------------------
stable_port=$(free_port)
canary_port=$(free_port)
start stable "$work/pipit" sample-app --listen "127.0.0.1:$stable_port" --version v1
start canary "$work/pipit" sample-app --listen "127.0.0.1:$canary_port" --version v2
wait_listening stable "127.0.0.1:$stable_port"
wait_listening canary "127.0.0.1:$canary_port"

pipit_port=$(free_port)
start pipit "$work/harness" -listen "127.0.0.1:$pipit_port" \
	-stable "http://127.0.0.1:$stable_port" -canary "http://127.0.0.1:$canary_port" -weight 5
wait_listening pipit "127.0.0.1:$pipit_port"

baseline_port=$(free_port)
start baseline "$work/baseline" -listen "127.0.0.1:$baseline_port" \
	-stable "127.0.0.1:$stable_port" -canary "127.0.0.1:$canary_port" -weight 5
wait_listening baseline "127.0.0.1:$baseline_port"

# nginx and HAProxy do what pipit does on every request: keep-alive
# connections to the backends, the same forwarding headers, no access log.
nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream app {
    server 127.0.0.1:$stable_port weight=95;
    server 127.0.0.1:$canary_port weight=5;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header Forwarded "for=\$remote_addr;host=\$host;proto=\$scheme";
    }
  }
}
EOF
start nginx nginx -c "$work/nginx.conf"
wait_listening nginx "127.0.0.1:$nginx_port"

haproxy_port=$(free_port)
cat >"$work/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
  option forwardfor
frontend fe
  bind 127.0.0.1:$haproxy_port
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header Forwarded "for=%[src];host=%[req.hdr(host)];proto=http"
  default_backend app
backend app
  balance roundrobin
  server stable 127.0.0.1:$stable_port weight 95
  server canary 127.0.0.1:$canary_port weight 5
EOF
start haproxy haproxy -f "$work/haproxy.cfg"
wait_listening haproxy "127.0.0.1:$haproxy_port"

# --- measurements ----------------------------------------------------------
targets=(direct pipit baseline nginx haproxy)
declare -A port=([direct]=$stable_port [pipit]=$pipit_port [baseline]=$baseline_port [nginx]=$nginx_port [haproxy]=$haproxy_port)
declare -A rps p50 p99 errs cpu sys
ticks_per_second=$(getconf CLK_TCK)

# to_ms converts wrk's latency (850.00us, 1.23ms, 1.05s) to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
		printf "%.3f", n
	}'
}

# per_request TICKS RPS: CPU time in microseconds per request served in one
# measurement of DURATION seconds at RPS requests/s.
per_request() {
	awk -v t="$1" -v hz="$ticks_per_second" -v r="$2" -v d="$DURATION" 'BEGIN {printf "%.1f", t / hz * 1e6 / (r * d)}'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
	for t in "${targets[@]}"; do
		url="http://127.0.0.1:${port[$t]}/"
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$url" >/dev/null
		ticks_before=$([ "$t" = direct ] || cpu_ticks "${pid[$t]}")
		out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")
		r=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
		if [ "$t" != direct ]; then
			# The proxy's own CPU time per request, in microseconds: all of
			# it, and the kernel's share.
			read -r user_before system_before <<<"$ticks_before"
			read -r user_after system_after <<<"$(cpu_ticks "${pid[$t]}")"
			cpu[$t]+="$(per_request $((user_after + system_after - user_before - system_before)) "$r") "
			sys[$t]+="$(per_request $((system_after - system_before)) "$r") "
		fi
		l50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
		l99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
		e=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
		rps[$t]+="$r "
		p50[$t]+="$l50 "
		p99[$t]+="$l99 "
		errs[$t]=$((${errs[$t]:-0} + e))
		log "round $round/$ROUNDS $t: $r req/s, p50 ${l50}ms, p99 ${l99}ms, $e errors"
	done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

declare -A m_rps m_p50 m_p99 m_cpu=([direct]="–") m_sys=([direct]="–")
for t in "${targets[@]}"; do
	if [ "$t" != direct ]; then
		m_cpu[$t]=$(median "${cpu[$t]}")
		m_sys[$t]=$(median "${sys[$t]}")
	fi
	m_rps[$t]=$(median "${rps[$t]}")
	m_p50[$t]=$(median "${p50[$t]}")
	m_p99[$t]=$(median "${p99[$t]}")
done

nginx_version=$(nginx -v 2>&1 | sed 's/.*nginx\///')
haproxy_version=$(haproxy -v 2>&1 | awk 'NR == 1 {print $3}')
declare -A label=([direct]="direct to one backend" [pipit]="pipit" [baseline]="minimal fasthttp proxy (reference)" [nginx]="nginx $nginx_version" [haproxy]="HAProxy $haproxy_version")

table="| target | requests/s | p50 (ms) | p99 (ms) | proxy CPU (µs/request) | of it in the kernel | errors |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for t in "${targets[@]}"; do
	table+="
| ${label[$t]} | $(printf '%.0f' "${m_rps[$t]}") | ${m_p50[$t]} | ${m_p99[$t]} | ${m_cpu[$t]} | ${m_sys[$t]} | ${errs[$t]} |"
done
summary="pipit/nginx rps: $(ratio "${m_rps[pipit]}" "${m_rps[nginx]}"); pipit/haproxy rps: $(ratio "${m_rps[pipit]}" "${m_rps[haproxy]}"); pipit/nginx p99: $(ratio "${m_p99[pipit]}" "${m_p99[nginx]}"); pipit/baseline rps: $(ratio "${m_rps[pipit]}" "${m_rps[baseline]}"); pipit/baseline cpu: $(ratio "${m_cpu[pipit]}" "${m_cpu[baseline]}")"
p99_haproxy="pipit/haproxy p99: $(ratio "${m_p99[pipit]}" "${m_p99[haproxy]}")"

# The budget of a proxy that would serve 1.2 times nginx's requests/s: the
# machine's CPU time per request behind nginx, less what nginx itself
# spent, is what wrk and the backends cost per request; a faster proxy
# saves only its own share. And the floor under that share: the kernel's
# work for the socket reads and writes, which any proxy forwarding the same
# requests over the same loopback connections pays. The least any proxy
# here needed stands for it (nginx and HAProxy make about as few such
# calls as a proxy can: one read and one write on each side of a request,
# and an epoll wait now and then).
least_kernel=haproxy
for t in pipit baseline nginx; do
	if awk -v a="${m_sys[$t]}" -v b="${m_sys[$least_kernel]}" 'BEGIN {exit !(a < b)}'; then least_kernel=$t; fi
done
budget=$(awk -v n="$(nproc)" -v r="${m_rps[nginx]}" -v c="${m_cpu[nginx]}" -v k="${m_sys[$least_kernel]}" -v who="${label[$least_kernel]% *}" 'BEGIN {
	total = n * 1e6 / r; others = total - c
	printf "Behind nginx the machine spent %.1f µs of CPU per request, %.1f µs of it in wrk and the backends. ", total, others
	printf "A proxy serving 1.2 times nginx'"'"'s requests/s would have to spend at most %.1f µs per request, ", n * 1e6 / (1.2 * r) - others
	printf "against nginx'"'"'s %.1f µs; a proxy that cost nothing would reach %.2f times nginx. ", c, total / others
	printf "The kernel'"'"'s work for the socket calls alone was at least %.1f µs per request (%s'"'"'s): a proxy that forwards the same requests ", k, who
	printf "over the same loopback connections pays about that much whatever it is written in, so on this machine it reaches at most about %.2f times nginx.", total / (others + k)
}')

# --- docs/benchmarks.md: the "## Proxy" section only --------------------------
doc=docs/benchmarks.md
section="## Proxy

Measured by \`bash bench/proxy.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), on a machine with
$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)); load average before the run: $load_before.
Each target is measured with \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency\` after a ${WARMUP}s warm-up,
in turn, $ROUNDS rounds; the table shows the median of the rounds. All of it runs on the same
machine: wrk, the two sample-app backends (\`pipit sample-app\`, v1 and v2) and the proxy under test.

$table

$summary; $p99_haproxy

$budget

- **pipit**: the real proxy code path (\`proxy.Server\` in front of a \`proxy.Proxy\`, as \`bench/proxy\`
  starts it) at a fixed canary weight of 5%, with the version header, per-version statistics,
  passive outlier detection and the forwarding headers on.
- **minimal fasthttp proxy**: \`bench/proxy/baseline\`, the same split and forwarding headers on
  fasthttp's HostClient and nothing else: no rules, statistics, outlier detection or protocol
  fallbacks. pipit's fast path is built on the same library, so the gap between the two rows is
  pipit's own work, and this row is the ceiling of that design on this machine.
- **nginx**: upstream weights 95/5, \`keepalive 128\`, HTTP/1.1 to the backends, no access log.
- **HAProxy**: server weights 95/5, \`http-reuse always\`, no log.
- nginx and HAProxy set the same forwarding headers as pipit (X-Forwarded-For, -Proto, -Host and
  \`Forwarded\`), so every proxy does the same work per request.
- All processes share the machine's CPUs: requests/s measure how much CPU each proxy leaves to
  the backends and to wrk as much as the proxy's own speed. The proxy CPU column (user and
  system time of the proxy's processes during the measurement, divided by the requests served)
  is the steadier number when the machine is noisy; the kernel column is the system time alone."

if [ -f "$doc" ]; then
	SECTION="$section" awk '
		/^## / { skip = 0; if ($0 == "## Proxy") { print ENVIRON["SECTION"]; print ""; skip = 1; done = 1; next } }
		!skip { print }
		END { if (!done) { print ""; print ENVIRON["SECTION"] } }
	' "$doc" >"$doc.tmp"
	mv "$doc.tmp" "$doc"
else
	mkdir -p docs
	printf '# Benchmarks\n\n%s\n' "$section" >"$doc"
fi

echo
echo "$table"
echo
echo "$p99_haproxy"
echo "$summary"
