# Sourced by bin/cassandra and bin/nodetool of the seedsvc Cassandra stand-in; the variables above this
# part were generated when the image context was staged (seedsvc_devcluster/images/cassandra_standin).
#
# Only bash builtins and coreutils here: the stand-in's base image need not have awk, grep or procps.

# As the official scripts: CASSANDRA_HOME defaults to the directory above bin/, so an unpacked tree
# runs from anywhere; the image sets CASSANDRA_HOME=/opt/cassandra and CASSANDRA_CONF=/etc/cassandra.
: "${CASSANDRA_HOME:=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/.." && pwd)}"
: "${CASSANDRA_CONF:=/etc/cassandra}"
# LOCAL_JMX=yes of cassandra-env.sh: JMX listens on 127.0.0.1 only, without authentication. The port
# is a variable here (cassandra-env.sh fixes it) so several nodes can share one host's loopback in tests.
: "${JMX_PORT:=7199}"

standin_die() {
	local status=$1
	shift
	echo "${0##*/}: $*" >&2
	exit "$status"
}

# standin_java: the java binary ($JAVA_HOME/bin/java, else java on PATH), refused when its JDK's
# release file names another major version than the one this Cassandra line is run on.
standin_java() {
	local java=${JAVA_HOME:+$JAVA_HOME/bin/java}
	if [[ -z $java ]]; then
		java=$(command -v java) || standin_die 1 "no java on PATH and JAVA_HOME is unset (needs Java $STANDIN_JAVA_MAJOR)"
	fi
	[[ -x $java ]] || standin_die 1 "JAVA_HOME=$JAVA_HOME has no executable bin/java"
	local release line major=
	release=$(dirname -- "$(dirname -- "$(readlink -f -- "$java")")")/release
	if [[ -r $release ]]; then
		while IFS= read -r line; do
			if [[ $line =~ ^JAVA_VERSION=\"([0-9]+) ]]; then
				major=${BASH_REMATCH[1]}
			fi
		done <"$release"
	fi
	if [[ -n $major && $major != "$STANDIN_JAVA_MAJOR" ]]; then
		standin_die 1 "$java is Java $major; Cassandra $STANDIN_CASSANDRA_VERSION runs on Java $STANDIN_JAVA_MAJOR here"
	fi
	printf '%s\n' "$java"
}
