# syntax=docker/dockerfile:1
# The official Apache Cassandra image plus the seedsvc shim (io.seedsvc.cassandra.SidecarSeedProvider)
# and an entrypoint that renders cassandra.yaml from environment variables into a writable directory,
# so the container runs with a read-only root filesystem as UID 999.
#
# Build from the repository root:
#   docker build -f deploy/images/cassandra.Dockerfile -t seedsvc/cassandra:5.0.8-seedsvc0.1.0 .
#
# Bases pinned by explicit version tags, not digests (not pulled from here: the repository's CI has no
# container engine). cassandra:5.0.8 is the newest 5.0 release in docker-library/cassandra when this
# was written; the shim is also tested against cassandra-all 5.0.9 (java-shim/pom.xml), so moving to
# 5.0.9 is a change of CASSANDRA_IMAGE only.
ARG CASSANDRA_IMAGE=cassandra:5.0.8
ARG MAVEN_IMAGE=maven:3.9.11-eclipse-temurin-17

# The shim jar, built as `make prerequisites` builds it (Java 8 bytecode, no runtime dependencies).
FROM ${MAVEN_IMAGE} AS shim
WORKDIR /build
COPY java-shim/pom.xml ./
COPY java-shim/src ./src
RUN mvn -B -q -ntp package -DskipTests \
 && test -s target/seedsvc-cassandra-shim.jar

FROM ${CASSANDRA_IMAGE}
# $CASSANDRA_HOME/lib/*.jar is on Cassandra's classpath (bin/cassandra.in.sh).
COPY --from=shim --chown=0:0 --chmod=0644 /build/target/seedsvc-cassandra-shim.jar /opt/cassandra/lib/
COPY --chown=0:0 --chmod=0755 deploy/images/cassandra-entrypoint.sh /usr/local/bin/seedsvc-cassandra-entrypoint
# /etc/cassandra becomes the read-only template; the configuration Cassandra reads is rendered into
# /run/cassandra/conf ($CASSANDRA_CONF, read by bin/cassandra, nodetool and cassandra-env.sh). In a
# pod both /run/cassandra and /var/log/cassandra are emptyDirs and /var/lib/cassandra is the data
# volume; the directories exist here too so that a plain `docker run` works.
RUN set -eux; \
    chown -R 0:0 /etc/cassandra; \
    chmod -R u=rwX,go=rX /etc/cassandra; \
    mkdir -p /run/cassandra/conf; \
    chown -R cassandra:cassandra /run/cassandra; \
    test -s /opt/cassandra/lib/seedsvc-cassandra-shim.jar
ENV CASSANDRA_CONF=/run/cassandra/conf \
    SEEDSVC_CONF_TEMPLATE=/etc/cassandra \
    SEEDSVC_CONF_OVERRIDES=/etc/cassandra-overrides
USER 999:999
ENTRYPOINT ["seedsvc-cassandra-entrypoint"]
CMD ["cassandra", "-f"]
