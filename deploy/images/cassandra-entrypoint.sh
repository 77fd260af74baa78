#!/usr/bin/env bash
# Entrypoint of the seedsvc Cassandra image (deploy/images/cassandra.Dockerfile).
#
# Renders Cassandra's configuration from environment variables into a writable directory, then runs
# Cassandra. It replaces the official image's docker-entrypoint.sh, which edits /etc/cassandra in place
# (impossible on a read-only root filesystem) and would write CASSANDRA_SEEDS, or the node's own
# address, into the seed list - the very self-seeding that seedsvc exists to control.
#
#   1. Copy the pristine configuration ($SEEDSVC_CONF_TEMPLATE, the image's /etc/cassandra), then the
#      operator's files from $SEEDSVC_CONF_OVERRIDES if that directory exists (for instance a ConfigMap
#      with a complete cassandra.yaml, or a Secret with keystores), into $CASSANDRA_CONF. Copied files
#      are never edited except cassandra.yaml and cassandra-rackdc.properties, as below.
#   2. Set a few scalar keys of cassandra.yaml from the variables of the chapter's run.sh. Every value
#      is checked against a narrow pattern first, so no value can inject YAML or awk code.
#   3. Replace the whole seed_provider block with one for io.seedsvc.cassandra.SidecarSeedProvider.
#   4. exec cassandra -f (as PID 1's replacement, so SIGTERM reaches the JVM).
#
# Authentication, authorization, TLS and JMX settings are never touched: whatever cassandra.yaml and
# cassandra-env.sh say (the image's defaults, or your overrides) stays in force.
#
# Variables (unset or empty = leave the configuration's value):
#   CASSANDRA_CLUSTER_NAME            cluster_name              letters, digits, space, . _ -
#   CASSANDRA_NUM_TOKENS              num_tokens                1..1024
#   CASSANDRA_LISTEN_ADDRESS          listen_address            IP; default $POD_IP (required one way)
#   CASSANDRA_BROADCAST_ADDRESS       broadcast_address         IP; default the listen address
#   CASSANDRA_RPC_ADDRESS             rpc_address               IP; default 0.0.0.0
#   CASSANDRA_BROADCAST_RPC_ADDRESS   broadcast_rpc_address     IP; default the broadcast address
#   CASSANDRA_ENDPOINT_SNITCH         endpoint_snitch           class name; GossipingPropertyFileSnitch
#                                                               when CASSANDRA_DC and CASSANDRA_RACK are set
#   CASSANDRA_DC, CASSANDRA_RACK      cassandra-rackdc.properties
#   CASSANDRA_REPLACE_ADDRESS         -Dcassandra.replace_address_first_boot (replace a dead node)
#   CASSANDRA_SEED_PROVIDER           class_name of seed_provider; default io.seedsvc.cassandra.SidecarSeedProvider
#   CASSANDRA_SEEDS                   the shim's static fallback `seeds` (SimpleSeedProvider syntax)
#   SEEDSVC_SHIM_URL                  url                default http://127.0.0.1:8080/seeds
#   SEEDSVC_SHIM_CACHE_FILE           cache_file         default /var/lib/cassandra/seedsvc-seeds.cache
#   SEEDSVC_SHIM_CONNECT_TIMEOUT_MS   connect_timeout_ms
#   SEEDSVC_SHIM_READ_TIMEOUT_MS      read_timeout_ms
#   SEEDSVC_SHIM_REQUEST_TIMEOUT_MS   request_timeout_ms
#   SEEDSVC_SHIM_STARTUP_WAIT_MS      startup_wait_ms
#   SEEDSVC_SHIM_LIVE_RELOAD          live_reload        true or false
#   SEEDSVC_SHIM_POLL_WAIT_SECONDS    poll_wait_seconds
# MAX_HEAP_SIZE and HEAP_NEWSIZE are read by cassandra-env.sh itself. The shim's parameters are
# documented in docs/java-shim.md.

set -euo pipefail

die() {
	echo "seedsvc-cassandra-entrypoint: $*" >&2
	exit 2
}

# --- checks: each value must match before it goes anywhere -----------------------------------------

readonly RE_IPV4='^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$'
# Loose on purpose (hex digits, colons, at most one embedded IPv4 tail); Cassandra parses it for real.
readonly RE_IPV6='^[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(\.[0-9.]+)?$'

# shown VALUE: the value quoted for a one-line message (newlines and quotes escaped).
shown() {
	printf '%q' "$1"
}

is_ip() {
	[[ $1 =~ $RE_IPV4 ]] || { [[ $1 =~ $RE_IPV6 ]] && [[ ${#1} -le 45 ]]; }
}

# check NAME PATTERN DESCRIPTION: the variable NAME, if set and non-empty, must match PATTERN.
check() {
	local name=$1 pattern=$2 what=$3 value=${!1-}
	if [[ -n $value && ! $value =~ $pattern ]]; then
		die "invalid $name=$(shown "$value"): expected $what"
	fi
}

check_ip() {
	local name=$1 value=${!1-}
	if [[ -n $value ]] && ! is_ip "$value"; then
		die "invalid $name=$(shown "$value"): expected an IPv4 or IPv6 address"
	fi
}

check_range() {
	local name=$1 low=$2 high=$3 value=${!1-}
	[[ -z $value ]] && return 0
	if [[ ! $value =~ ^[0-9]{1,9}$ ]] || ((10#$value < low || 10#$value > high)); then
		die "invalid $name=$(shown "$value"): expected a whole number from $low to $high"
	fi
}

# --- editing -----------------------------------------------------------------------------------------

# set_key FILE KEY VALUE: replace the first line that sets KEY, commented out or not ("key: ..." or
# "# key: ..."), with "KEY: VALUE"; append it if there is none. Only ever called with checked values,
# which awk receives through the environment, never inside its program text.
set_key() {
	local file=$1 tmp
	tmp=$(mktemp "$file.XXXXXX")
	SET_KEY=$2 SET_VALUE=$3 awk '
		BEGIN { key = ENVIRON["SET_KEY"]; value = ENVIRON["SET_VALUE"]; done = 0 }
		!done && ($0 ~ "^(# ?)?" key ":( |$)") { print key ": " value; done = 1; next }
		{ print }
		END { if (!done) print key ": " value }
	' "$file" >"$tmp"
	mv -- "$tmp" "$file"
}

# drop_seed_provider FILE: remove the top-level seed_provider block (its key line and every following
# line that is indented, blank or an indented comment, up to the next top-level line).
drop_seed_provider() {
	local file=$1 tmp
	tmp=$(mktemp "$file.XXXXXX")
	awk '
		/^seed_provider:/ { skipping = 1; next }
		skipping && /^[^[:space:]]/ { skipping = 0 }
		!skipping { print }
	' "$file" >"$tmp"
	mv -- "$tmp" "$file"
	if grep -q '^seed_provider:' "$file"; then
		die "$file: more than one seed_provider block"
	fi
}

# yaml_quote VALUE: a double-quoted YAML scalar. Checked values contain no quote, backslash or
# control character, so wrapping is enough.
yaml_quote() {
	printf '"%s"' "$1"
}

render() {
	local template=${SEEDSVC_CONF_TEMPLATE:-/etc/cassandra}
	local overrides=${SEEDSVC_CONF_OVERRIDES:-/etc/cassandra-overrides}
	local conf=${CASSANDRA_CONF:?CASSANDRA_CONF must name the directory to render the configuration into}

	[[ -f $template/cassandra.yaml ]] || die "no cassandra.yaml in SEEDSVC_CONF_TEMPLATE=$template"
	[[ $(cd -- "$template" && pwd -P) != $(mkdir -p -- "$conf" && cd -- "$conf" && pwd -P) ]] ||
		die "CASSANDRA_CONF=$conf is the template directory; it must be a separate, writable one"

	# Checks first: nothing is written for an invalid configuration. POD_IP before the addresses that
	# default to it, so a message names the variable that was actually set.
	check_ip POD_IP
	: "${CASSANDRA_LISTEN_ADDRESS:=${POD_IP:-}}"
	[[ -n $CASSANDRA_LISTEN_ADDRESS ]] ||
		die "neither CASSANDRA_LISTEN_ADDRESS nor POD_IP is set (set POD_IP from the downward API: status.podIP)"
	: "${CASSANDRA_BROADCAST_ADDRESS:=$CASSANDRA_LISTEN_ADDRESS}"
	: "${CASSANDRA_RPC_ADDRESS:=0.0.0.0}"
	: "${CASSANDRA_BROADCAST_RPC_ADDRESS:=$CASSANDRA_BROADCAST_ADDRESS}"
	local var
	for var in CASSANDRA_LISTEN_ADDRESS CASSANDRA_BROADCAST_ADDRESS CASSANDRA_RPC_ADDRESS \
		CASSANDRA_BROADCAST_RPC_ADDRESS CASSANDRA_REPLACE_ADDRESS; do
		check_ip "$var"
	done
	check CASSANDRA_CLUSTER_NAME '^[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}$' 'letters, digits, space, . _ - (at most 128)'
	check_range CASSANDRA_NUM_TOKENS 1 1024
	check CASSANDRA_ENDPOINT_SNITCH '^[A-Za-z_][A-Za-z0-9_.$]{0,255}$' 'a Java class name'
	check CASSANDRA_SEED_PROVIDER '^[A-Za-z_][A-Za-z0-9_.$]{0,255}$' 'a Java class name'
	check CASSANDRA_DC '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' 'letters, digits, . _ - (at most 64)'
	check CASSANDRA_RACK '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' 'letters, digits, . _ - (at most 64)'
	# SimpleSeedProvider syntax: host names, IPv4, [IPv6]:port or bare IPv6, comma-separated.
	check CASSANDRA_SEEDS '^[][A-Za-z0-9.:,_ -]{1,4096}$' 'comma-separated host names or addresses'
	check SEEDSVC_SHIM_URL '^https?://[][A-Za-z0-9.:_-]+(/[A-Za-z0-9._~/?&=%-]*)?$' 'an http(s) URL'
	check SEEDSVC_SHIM_CACHE_FILE '^/[A-Za-z0-9._/-]{1,1023}$' 'an absolute path'
	check_range SEEDSVC_SHIM_CONNECT_TIMEOUT_MS 1 60000
	check_range SEEDSVC_SHIM_READ_TIMEOUT_MS 1 60000
	check_range SEEDSVC_SHIM_REQUEST_TIMEOUT_MS 1 60000
	check_range SEEDSVC_SHIM_STARTUP_WAIT_MS 0 3600000
	check SEEDSVC_SHIM_LIVE_RELOAD '^(true|false)$' 'true or false'
	check_range SEEDSVC_SHIM_POLL_WAIT_SECONDS 1 300
	if [[ -n ${CASSANDRA_DC-} || -n ${CASSANDRA_RACK-} ]] && [[ -z ${CASSANDRA_DC-} || -z ${CASSANDRA_RACK-} ]]; then
		die "set both CASSANDRA_DC and CASSANDRA_RACK, or neither"
	fi

	# 1. Copy. `cp -R .` keeps file modes; a read-only source file stays read-only, which is fine:
	# the two files edited below are replaced (mv), not written in place.
	cp -R -- "$template"/. "$conf"/
	if [[ -d $overrides ]]; then
		# ConfigMap and Secret volumes hold symlinks into a ..data directory: copy what they point to.
		cp -RL -- "$overrides"/. "$conf"/
		rm -rf -- "$conf"/..?* 2>/dev/null || true
	fi
	local yaml=$conf/cassandra.yaml

	# 2. Scalar keys.
	if [[ -n ${CASSANDRA_CLUSTER_NAME-} ]]; then
		set_key "$yaml" cluster_name "$(yaml_quote "$CASSANDRA_CLUSTER_NAME")"
	fi
	if [[ -n ${CASSANDRA_NUM_TOKENS-} ]]; then
		set_key "$yaml" num_tokens "$((10#$CASSANDRA_NUM_TOKENS))"
	fi
	set_key "$yaml" listen_address "$CASSANDRA_LISTEN_ADDRESS"
	set_key "$yaml" broadcast_address "$CASSANDRA_BROADCAST_ADDRESS"
	set_key "$yaml" rpc_address "$CASSANDRA_RPC_ADDRESS"
	set_key "$yaml" broadcast_rpc_address "$CASSANDRA_BROADCAST_RPC_ADDRESS"
	local snitch=${CASSANDRA_ENDPOINT_SNITCH-}
	if [[ -n ${CASSANDRA_DC-} ]]; then
		printf 'dc=%s\nrack=%s\n' "$CASSANDRA_DC" "$CASSANDRA_RACK" >"$conf/cassandra-rackdc.properties.new"
		mv -- "$conf/cassandra-rackdc.properties.new" "$conf/cassandra-rackdc.properties"
		: "${snitch:=GossipingPropertyFileSnitch}"
	fi
	if [[ -n $snitch ]]; then
		set_key "$yaml" endpoint_snitch "$snitch"
	fi

	# 3. The seed provider. Parameters the operator did not set are left out, so the shim's documented
	# defaults apply.
	drop_seed_provider "$yaml"
	local provider=${CASSANDRA_SEED_PROVIDER:-io.seedsvc.cassandra.SidecarSeedProvider}
	{
		echo
		echo "# Written by seedsvc-cassandra-entrypoint from the environment; see docs/java-shim.md."
		echo "seed_provider:"
		echo "  - class_name: $provider"
		echo "    parameters:"
		if [[ $provider == io.seedsvc.cassandra.SidecarSeedProvider ]]; then
			echo "      - url: $(yaml_quote "${SEEDSVC_SHIM_URL:-http://127.0.0.1:8080/seeds}")"
			echo "        cache_file: $(yaml_quote "${SEEDSVC_SHIM_CACHE_FILE:-/var/lib/cassandra/seedsvc-seeds.cache}")"
			local param env
			for param in connect_timeout_ms:SEEDSVC_SHIM_CONNECT_TIMEOUT_MS read_timeout_ms:SEEDSVC_SHIM_READ_TIMEOUT_MS \
				request_timeout_ms:SEEDSVC_SHIM_REQUEST_TIMEOUT_MS startup_wait_ms:SEEDSVC_SHIM_STARTUP_WAIT_MS live_reload:SEEDSVC_SHIM_LIVE_RELOAD \
				poll_wait_seconds:SEEDSVC_SHIM_POLL_WAIT_SECONDS seeds:CASSANDRA_SEEDS; do
				env=${param#*:}
				if [[ -n ${!env-} ]]; then
					echo "        ${param%%:*}: $(yaml_quote "${!env}")"
				fi
			done
		else
			# Any other provider (SimpleSeedProvider, say) gets the static list only.
			[[ -n ${CASSANDRA_SEEDS-} ]] || die "CASSANDRA_SEED_PROVIDER=$provider needs CASSANDRA_SEEDS"
			echo "      - seeds: $(yaml_quote "$CASSANDRA_SEEDS")"
		fi
	} >>"$yaml"

	if [[ -n ${CASSANDRA_REPLACE_ADDRESS-} ]]; then
		# cassandra-env.sh appends JVM_EXTRA_OPTS to the JVM's options. first_boot: ignored once the
		# node has joined, so leaving the variable set after the replacement is harmless.
		export JVM_EXTRA_OPTS="${JVM_EXTRA_OPTS:+$JVM_EXTRA_OPTS }-Dcassandra.replace_address_first_boot=$CASSANDRA_REPLACE_ADDRESS"
	fi
	local cache=${SEEDSVC_SHIM_CACHE_FILE:-/var/lib/cassandra/seedsvc-seeds.cache}
	mkdir -p -- "$(dirname -- "$cache")" 2>/dev/null || true

	echo "seedsvc-cassandra-entrypoint: configuration rendered into $conf" \
		"(listen $CASSANDRA_LISTEN_ADDRESS, seed provider $provider)" >&2
}

# No arguments or only options: run Cassandra in the foreground with them, as the official image does.
if [[ $# -eq 0 || ${1#-} != "$1" ]]; then
	set -- cassandra -f "$@"
fi
if [[ $1 == cassandra ]]; then
	render
fi
exec "$@"
