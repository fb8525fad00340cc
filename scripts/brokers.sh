#!/usr/bin/env bash
# scripts/brokers.sh - real Kafka and RabbitMQ on 127.0.0.1 for queue-scaler's
# integration tests and CI.
#
# The project's machines (developers' and CI's) are plain Debian 12 boxes with
# Java 17 and Maven, no Docker, and network access to package registries only.
# Nothing started or installed by hand survives to CI, so this script does it
# all, idempotently:
#
#   * Kafka: a single-node KRaft cluster (combined broker+controller) assembled
#     from Maven Central jars (scripts/kafka/pom.xml), run with `java -cp`.
#     Jars, data and logs live in the state dir (see below); the jars are
#     cached there, so only the first `up` on a machine pays for the download.
#   * RabbitMQ: Debian's rabbitmq-server package (+ management plugin), started
#     with `rabbitmq-server -detached`. It runs as the `rabbitmq` user with its
#     config in /etc/rabbitmq and logs in /var/log/rabbitmq (Debian layout).
#   * TLS for both, from a private test CA made with openssl in the state dir:
#     Kafka gets a SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; one
#     user), RabbitMQ an AMQPS listener and the management API over HTTPS, next
#     to the plain listeners (which stay as they are).
#
# Usage:
#   eval "$(scripts/brokers.sh up)"   # install what's missing, start, wait, print env
#   scripts/brokers.sh up [kafka|rabbitmq]      # just one (restarts a killed one)
#   scripts/brokers.sh down [kafka|rabbitmq]    # stop (both by default)
#   scripts/brokers.sh restart [kafka|rabbitmq]
#   scripts/brokers.sh kill [kafka|rabbitmq]       # SIGKILL (fault tests); `up` brings it back
#   scripts/brokers.sh status [kafka|rabbitmq]  # exit 1 if any is not answering
#   scripts/brokers.sh env                      # print the exports, start nothing
#   scripts/brokers.sh logs [kafka|rabbitmq]    # tail of the broker logs
#
# stdout of `up`/`env` is ONLY `export NAME=value` lines; all progress goes to
# stderr.  `up kafka` / `up rabbitmq` print only that broker's exports:
#   kafka:    QUEUE_SCALER_TEST_KAFKA=127.0.0.1:9092            (PLAINTEXT)
#             QUEUE_SCALER_TEST_KAFKA_PROXIED_LISTENER=127.0.0.1:9094
#             QUEUE_SCALER_TEST_KAFKA_PROXY_ADDRESS=127.0.0.1:9095
#             QUEUE_SCALER_TEST_KAFKA_SASL_SSL=127.0.0.1:9096   (SASL_SSL)
#             QUEUE_SCALER_TEST_KAFKA_SASL_USER=scaler
#             QUEUE_SCALER_TEST_KAFKA_SASL_PASSWORD=scaler-secret-9fK2
#                 (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 all accept this user)
#   rabbitmq: QUEUE_SCALER_TEST_RABBITMQ_AMQP=amqp://guest:guest@127.0.0.1:5672/
#             QUEUE_SCALER_TEST_RABBITMQ_HTTP=http://guest:guest@127.0.0.1:15672/
#             QUEUE_SCALER_TEST_RABBITMQ_AMQPS=amqps://guest:guest@127.0.0.1:5671/
#             QUEUE_SCALER_TEST_RABBITMQ_HTTPS=https://guest:guest@127.0.0.1:15671/
#   always:   QUEUE_SCALER_TEST_TLS_CA=<state dir>/tls/ca.pem   (absolute; the CA that
#             signed the certificate of every TLS listener above, which is valid for
#             127.0.0.1 and localhost; it is in no system trust store)
#
# Environment knobs:
#   QUEUE_SCALER_BROKER_DIR      state dir (default: <repo>/.brokers)
#   QUEUE_SCALER_KAFKA_VERSION   Kafka version to fetch (default: the pom's)
#   QUEUE_SCALER_BROKER_TIMEOUT  seconds to wait for each broker (default 180)
#
# State dir layout (RabbitMQ uses the Debian system paths; its copies of the
# TLS files are in /etc/rabbitmq/tls/):
#   tls/ca.pem, ca.key   the private test CA (made once, kept; delete tls/ to renew)
#   tls/server.pem, server.key  the brokers' certificate (127.0.0.1 + localhost) and
#                        its unencrypted PKCS#8 key, signed by that CA
#   kafka/libs/          jars from Maven Central (+ .stamp = what they were built from)
#   kafka/data/          KRaft metadata + topic data (kept across down/up)
#   kafka/data/.scram-users  marker: the SCRAM credentials are in the metadata
#   kafka/logs/          server.log (broker), kafkaServer.out (JVM console), mvn.log
#   kafka/kafka.pid      pid of the running broker JVM
#   kafka/keystore.pem   server.key + server.pem in one file (Kafka's PEM keystore)
#   kafka/server.properties, kafka/tools.properties, kafka/cluster.id
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# Absolute (without resolving symlinks): the CA path is exported to tests that
# may run from another directory.
STATE_DIR=$(realpath -m -s -- "${QUEUE_SCALER_BROKER_DIR:-$REPO_ROOT/.brokers}")
TIMEOUT=${QUEUE_SCALER_BROKER_TIMEOUT:-180}

HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_PROXIED_PORT=9094  # the broker's listener behind a counting proxy
KAFKA_PROXY_PORT=9095    # where that proxy listens (advertised for the PROXIED listener)
KAFKA_SASL_SSL_PORT=9096
RABBIT_AMQP_PORT=5672
RABBIT_HTTP_PORT=15672
RABBIT_AMQPS_PORT=5671
RABBIT_HTTPS_PORT=15671

# The one SASL user of Kafka's SASL_SSL listener (PLAIN and both SCRAMs). A test
# secret, printed in the exports; only [A-Za-z0-9-] so it needs no quoting in
# JAAS, ConfigCommand's [password=...] syntax or the shell.
KAFKA_SASL_USER=scaler
KAFKA_SASL_PASSWORD=scaler-secret-9fK2

TLS_DIR=$STATE_DIR/tls
TLS_CA=$TLS_DIR/ca.pem
TLS_CA_KEY=$TLS_DIR/ca.key
TLS_CERT=$TLS_DIR/server.pem
TLS_KEY=$TLS_DIR/server.key
TLS_DAYS=3650

KAFKA_POM=$SCRIPT_DIR/kafka/pom.xml
KAFKA_DIR=$STATE_DIR/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_LOGS=$KAFKA_DIR/logs
KAFKA_PIDFILE=$KAFKA_DIR/kafka.pid
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_TOOLS_PROPS=$KAFKA_DIR/tools.properties
KAFKA_KEYSTORE=$KAFKA_DIR/keystore.pem
# In the data dir so that it goes away with the metadata it vouches for (Kafka
# ignores plain files at the top of a log dir).
KAFKA_SCRAM_MARKER=$KAFKA_DATA/.scram-users
# The broker gets a modest fixed heap: CI machines have 2 cores / 24 GiB and
# also run RabbitMQ and the test suite.
KAFKA_HEAP_OPTS=(-Xms256m -Xmx768m)
# Short-lived CLI JVMs (StorageTool, TopicCommand): start fast, stay small.
KAFKA_TOOL_OPTS=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
                 "-Dlog4j2.configurationFile=$SCRIPT_DIR/kafka/log4j2-tools.xml")

RABBIT_ETC=/etc/rabbitmq
RABBIT_TLS_DIR=$RABBIT_ETC/tls
RABBIT_LOG_DIR=/var/log/rabbitmq
# A fixed node name on "localhost" so the node does not depend on the machine's
# hostname resolving (containers/sandboxes often get odd hostnames).
RABBIT_NODENAME=rabbit@localhost
RABBIT_PIDFILE=/var/lib/rabbitmq/mnesia/$RABBIT_NODENAME.pid

# ---------------------------------------------------------------- helpers ---

log() { printf '[brokers %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

die() {
  printf '[brokers %(%H:%M:%S)T] ERROR: %s\n' -1 "$*" >&2
  exit 1
}

# Print the last lines of each existing log file to stderr (for failures).
tail_logs() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf '[brokers] ---- last 40 lines of %s ----\n' "$f" >&2
    tail -n 40 "$f" >&2 || true
  done
}

# The first lines of FILE from line START on that look like errors: when a
# broker dies, the tail of its log is often one long stack trace or shutdown
# chatter, and the line that names the cause ("Caused by: ... Address already
# in use") is further up.
show_errors() { # show_errors FILE START ERE
  [[ -s $1 ]] || return 0
  local lines
  lines=$(tail -n "+$2" "$1" | grep -E "$3" | head -n 12) || true
  [[ -n $lines ]] || return 0
  printf '[brokers] ---- error lines of this start in %s ----\n%s\n' "$1" "$lines" >&2
}

# Line count + 1 of FILE: where the log of a start we are about to make begins.
next_line() {
  local n=0
  [[ -f $1 ]] && n=$(wc -l <"$1")
  echo $((n + 1))
}

# The state dir and RabbitMQ's system paths need root for installs; allow a
# non-root developer with sudo, but never require it when already root.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# True if PID is a live process (not a zombie waiting to be reaped: after a
# SIGKILL the corpse can linger for a while in containers whose pid 1 reaps late).
pid_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }         # drop "pid (comm) "; the state letter comes first
  [[ ${stat:0:1} != [ZX] ]]
}

# True if something accepts TCP connections on $HOST:$1 (bash /dev/tcp, so no
# extra tools are needed).
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

APT_UPDATED=0
apt_install() {
  # Debian's maintainer scripts try to start services they install
  # (invoke-rc.d). Without systemd/init that either fails the install or
  # starts RabbitMQ with the default config behind our back. A policy-rc.d
  # that exits 101 ("action forbidden") makes them skip the start; Docker-like
  # images already ship one, otherwise we add one just for this install.
  local added_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, added by queue-scaler scripts/brokers.sh\nexit 101\n' \
      | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  local rc=0
  {
    if [[ $APT_UPDATED -eq 0 ]]; then
      log "apt-get update"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 && APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends -o DPkg::Lock::Timeout=300 \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2
  } || rc=$?
  if [[ $added_policy -eq 1 ]]; then
    as_root rm -f /usr/sbin/policy-rc.d
  fi
  [[ $rc -eq 0 ]] || die "apt-get install $* failed (exit $rc)"
}

ensure_cmd() { # ensure_cmd COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

# -------------------------------------------------------------------- tls ---

# openssl config for the test CA and the server certificate. Explicit sections
# so the result does not depend on the machine's /etc/ssl/openssl.cnf. The
# extensions are what strict verifiers insist on (Python's X509_STRICT, Java,
# Erlang): a CA with keyUsage, a leaf with SAN + authority key id + serverAuth.
tls_openssl_cnf() {
  cat <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = queue-scaler test CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
}

# The private test CA and the one server certificate that every TLS listener
# (Kafka and RabbitMQ) presents. Made once and then kept: a new CA would
# invalidate what the running brokers serve and what tests already trust.
# RSA 2048 and PKCS#8 keys (what `genpkey` writes): Kafka's PEM keystore,
# Erlang's ssl and Python all read them unencrypted.
tls_ensure() {
  if [[ -s $TLS_CA && -s $TLS_CA_KEY && -s $TLS_CERT && -s $TLS_KEY ]]; then
    return 0
  fi
  ensure_cmd openssl openssl
  mkdir -p "$TLS_DIR"
  # Built in a scratch dir and moved in file by file (key before certificate):
  # an interrupted run never leaves a certificate without its key.
  local tmp=$TLS_DIR/tmp out=$TLS_DIR/tmp/openssl.log
  rm -rf "$tmp"
  mkdir -m 700 "$tmp"
  tls_openssl_cnf >"$tmp/openssl.cnf"
  if [[ ! -s $TLS_CA || ! -s $TLS_CA_KEY ]]; then
    log "creating the test CA in $TLS_DIR"
    { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/ca.key" &&
      openssl req -x509 -new -config "$tmp/openssl.cnf" -extensions ca -key "$tmp/ca.key" \
        -sha256 -days "$TLS_DAYS" -out "$tmp/ca.pem"
    } >"$out" 2>&1 || { tail_logs "$out"; die "TLS: creating the test CA failed"; }
    # A server certificate from an earlier CA is useless now.
    rm -f "$TLS_CERT" "$TLS_KEY"
    mv "$tmp/ca.key" "$TLS_CA_KEY"
    mv "$tmp/ca.pem" "$TLS_CA"
  fi
  if [[ ! -s $TLS_CERT || ! -s $TLS_KEY ]]; then
    log "creating the brokers' TLS certificate for $HOST/localhost in $TLS_DIR"
    { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/server.key" &&
      openssl req -new -config "$tmp/openssl.cnf" -key "$tmp/server.key" -subj /CN=localhost \
        -out "$tmp/server.csr" &&
      openssl x509 -req -in "$tmp/server.csr" -CA "$TLS_CA" -CAkey "$TLS_CA_KEY" \
        -set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$TLS_DAYS" \
        -extfile "$tmp/openssl.cnf" -extensions server -out "$tmp/server.pem"
    } >"$out" 2>&1 || { tail_logs "$out"; die "TLS: creating the server certificate failed"; }
    mv "$tmp/server.key" "$TLS_KEY"
    mv "$tmp/server.pem" "$TLS_CERT"
  fi
  chmod 600 "$TLS_CA_KEY" "$TLS_KEY"
  rm -rf "$tmp"
}

# ------------------------------------------------------------------ kafka ---

# What the cached jars must match: the pom and the requested version. If either
# changes, the jar cache is rebuilt instead of mixing two Kafka versions.
kafka_fingerprint() {
  { cat "$KAFKA_POM"; echo "version=${QUEUE_SCALER_KAFKA_VERSION:-}"; } | sha256sum | cut -d' ' -f1
}

kafka_install() {
  ensure_cmd java openjdk-17-jre-headless
  ensure_cmd mvn maven
  # Kafka 4.x brokers need Java 17+; say so instead of a cryptic class error.
  local java_major
  java_major=$(java -XshowSettings:properties -version 2>&1 \
               | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
  if [[ -z $java_major || $java_major -lt 17 ]]; then
    die "Kafka 4 needs Java 17 or newer; 'java' here is version ${java_major:-unknown}"
  fi
  mkdir -p "$KAFKA_DIR" "$KAFKA_LOGS"
  local want
  want=$(kafka_fingerprint)
  if [[ -f $KAFKA_LIBS/.stamp && $(cat "$KAFKA_LIBS/.stamp") == "$want" ]]; then
    return 0
  fi
  if [[ -f $KAFKA_LIBS/.stamp ]] && kafka_pid >/dev/null; then
    # Never swap the jars under a running broker (it loads classes lazily).
    log "WARNING: the Kafka jar set changed (pom.xml or QUEUE_SCALER_KAFKA_VERSION); 'scripts/brokers.sh restart kafka' switches to it"
    return 0
  fi
  log "fetching Kafka jars from Maven Central into $KAFKA_LIBS (cached for later runs)"
  local tmp=$KAFKA_DIR/libs.tmp
  rm -rf "$tmp"
  local mvn_args=(-B -q -f "$KAFKA_POM" dependency:copy-dependencies
                  "-DoutputDirectory=$tmp" -DincludeScope=runtime)
  if [[ -n ${QUEUE_SCALER_KAFKA_VERSION:-} ]]; then
    mvn_args+=("-Dkafka.version=$QUEUE_SCALER_KAFKA_VERSION")
  fi
  if ! mvn "${mvn_args[@]}" >"$KAFKA_LOGS/mvn.log" 2>&1; then
    tail_logs "$KAFKA_LOGS/mvn.log"
    die "Kafka: fetching jars with Maven failed (full log: $KAFKA_LOGS/mvn.log)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "Kafka: Maven ran but no kafka_2.13 jar in $tmp"
  echo "$want" >"$tmp/.stamp"
  # Swap in atomically-ish so an interrupted download never looks complete.
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
}

kafka_version() {
  local jar
  jar=$(compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" | head -n1) || true
  jar=${jar##*/kafka_2.13-}
  echo "${jar%.jar}"
}

# The broker's config. Regenerated on every start so it always matches this
# script; the data dir depends on nothing here but node.id / log.dirs (fixed).
kafka_server_properties() {
  local cert_sum
  cert_sum=$( (sha256sum <"$TLS_CERT" | cut -d' ' -f1) 2>/dev/null) || true
  cat <<EOF
# Generated by scripts/brokers.sh on every start; edit the script, not this file.
# Single-node KRaft: this process is both the broker and the (only) controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
# PROXIED advertises a port nobody listens on until a test or benchmark starts its
# request-counting TCP proxy there (forwarding to this listener): clients that bootstrap
# through the proxy keep talking through it, so every request they send is counted.
# SASL_SSL is for the tests of secure connections; it is never used between
# broker and controller (PLAINTEXT/CONTROLLER are).
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT,PROXIED://$HOST:$KAFKA_PROXIED_PORT,SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,PROXIED://$HOST:$KAFKA_PROXY_PORT,SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$KAFKA_DATA

# SASL_SSL: TLS with the test CA's server certificate (no client certificates),
# then SASL as user $KAFKA_SASL_USER with any of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.
# PLAIN's user list is the JAAS line below; the SCRAM credentials are in the
# KRaft metadata (scripts/brokers.sh adds them). No authorizer: any
# authenticated user may do anything.
# keystore.pem = tls/server.key + tls/server.pem (Kafka's PEM keystore wants key
# and chain in one file; an unencrypted key means no ssl.key.password).
# A renewed certificate must count as a config change, hence its hash:
# tls/server.pem sha256 $cert_sum
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$KAFKA_KEYSTORE
listener.name.sasl_ssl.ssl.client.auth=none
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

# One broker: every internal topic must have replication factor 1.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
# Fewer __consumer_offsets partitions than the default 50: the topic is created
# on the first group operation and recovered on every restart; 10 is plenty here.
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Test-friendly behaviour: consumers join groups immediately; topics exist only
# when a test creates them; tests may delete topics.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true

# After a SIGKILL (fault-injection tests) the controller keeps the dead
# broker's registration until its session expires (default 9 s) and only then
# lets the restarted one in; a shorter session makes such restarts quicker.
# Heartbeats stay in-process (combined mode), so 1 s / 5 s is still safe.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=5000

# Sized for a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

# Client settings for the CLI tools (readiness check, SCRAM users): fail fast
# instead of the AdminClient's default 60 s when the broker is not up yet.
kafka_write_tools_config() {
  cat >"$KAFKA_TOOLS_PROPS" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

kafka_write_config() {
  [[ -s $TLS_CERT && -s $TLS_KEY ]] || die "Kafka: no TLS certificate in $TLS_DIR"
  # The keystore holds a private key: private to this user from the start.
  (umask 077 && cat "$TLS_KEY" "$TLS_CERT" >"$KAFKA_KEYSTORE.tmp") &&
    mv "$KAFKA_KEYSTORE.tmp" "$KAFKA_KEYSTORE"
  kafka_server_properties >"$KAFKA_PROPS"
  kafka_write_tools_config
}

# What the SCRAM marker records: the credentials as this script wants them, so
# a changed user or password is applied again (hashed: the marker is no
# second copy of the password).
kafka_scram_fingerprint() {
  echo "$KAFKA_SASL_USER:$KAFKA_SASL_PASSWORD:SCRAM-SHA-256,SCRAM-SHA-512" | sha256sum | cut -d' ' -f1
}

# The SCRAM credentials of the SASL user. They live in the KRaft metadata, so
# they survive restarts and kills and are added once per data dir: by
# kafka_format (--add-scram) for a new one, or here, over the PLAINTEXT
# listener of the running broker, for a data dir formatted before SASL_SSL
# existed (or after the password changed). The marker makes repeat `up`s free.
kafka_ensure_scram() {
  local want
  want=$(kafka_scram_fingerprint)
  [[ -f $KAFKA_SCRAM_MARKER && $(cat "$KAFKA_SCRAM_MARKER") == "$want" ]] && return 0
  # Only into our own broker (not one from another state dir we merely use).
  kafka_pid >/dev/null || return 0
  log "Kafka: adding SCRAM-SHA-256/512 credentials for user $KAFKA_SASL_USER"
  # One mechanism per call: a KRaft broker rejects both in one request
  # ("A user credential cannot be altered twice in the same request").
  local mech cls=kafka.admin.ConfigCommand
  # Kafka 4.1 has it in the core jar; newer releases move the tools to
  # kafka-tools (a jar's file names are stored uncompressed, so grep finds them).
  if grep -qa 'org/apache/kafka/tools/ConfigCommand\.class' "$KAFKA_LIBS"/kafka-tools-*.jar 2>/dev/null; then
    cls=org.apache.kafka.tools.ConfigCommand
  fi
  for mech in SCRAM-SHA-256 SCRAM-SHA-512; do
    if ! timeout 60 java "${KAFKA_TOOL_OPTS[@]}" -cp "$KAFKA_LIBS/*" "$cls" \
          --bootstrap-server "$HOST:$KAFKA_PORT" --command-config "$KAFKA_TOOLS_PROPS" \
          --alter --entity-type users --entity-name "$KAFKA_SASL_USER" \
          --add-config "$mech=[password=$KAFKA_SASL_PASSWORD]" \
          >"$KAFKA_LOGS/scram.log" 2>&1; then
      tail_logs "$KAFKA_LOGS/scram.log"
      die "Kafka: adding the $mech credential of $KAFKA_SASL_USER failed"
    fi
  done
  echo "$want" >"$KAFKA_SCRAM_MARKER"
}

kafka_format() {
  # KRaft refuses to start on an unformatted log dir. Format once; afterwards
  # meta.properties exists and the data (topics, offsets) is kept across
  # down/up and across a killed broker.
  if [[ -f $KAFKA_DATA/meta.properties ]]; then
    return 0
  fi
  local cluster_id
  if [[ -s $KAFKA_DIR/cluster.id ]]; then
    cluster_id=$(cat "$KAFKA_DIR/cluster.id")
  else
    # A Kafka cluster id is 16 random bytes, base64url without padding (what
    # `kafka-storage.sh random-uuid` prints); bash is faster than a JVM here.
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    echo "$cluster_id" >"$KAFKA_DIR/cluster.id"
  fi
  log "formatting Kafka storage in $KAFKA_DATA (cluster id $cluster_id)"
  mkdir -p "$KAFKA_DATA"
  # The SCRAM credentials go into the initial metadata: no extra JVM (and no
  # window without them) after the first start.
  local p=$KAFKA_SASL_PASSWORD u=$KAFKA_SASL_USER
  if ! java "${KAFKA_TOOL_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
        --cluster-id "$cluster_id" --config "$KAFKA_PROPS" --ignore-formatted \
        --add-scram "SCRAM-SHA-256=[name=$u,password=$p]" \
        --add-scram "SCRAM-SHA-512=[name=$u,password=$p]" \
        >"$KAFKA_LOGS/format.log" 2>&1; then
    tail_logs "$KAFKA_LOGS/format.log"
    die "Kafka: formatting storage failed"
  fi
  kafka_scram_fingerprint >"$KAFKA_SCRAM_MARKER"
}

# Pid of our running broker, or nothing. The pid must still be a kafka.Kafka
# JVM started with our server.properties: a stale pid file whose pid was
# reused by another process must not count (and must never be killed).
kafka_pid() {
  [[ -s $KAFKA_PIDFILE ]] || return 1
  local pid cmdline
  pid=$(cat "$KAFKA_PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *kafka.Kafka*"$KAFKA_PROPS"* ]] || return 1
  echo "$pid"
}

# Client-level check: a real AdminClient metadata round trip (list topics).
kafka_answers() {
  port_open "$KAFKA_PORT" || return 1
  [[ -d $KAFKA_LIBS ]] || return 1
  [[ -f $KAFKA_TOOLS_PROPS ]] || kafka_write_tools_config
  timeout 30 java "${KAFKA_TOOL_OPTS[@]}" -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$HOST:$KAFKA_PORT" --command-config "$KAFKA_TOOLS_PROPS" --list \
    >/dev/null 2>"$KAFKA_LOGS/check.err"
}

kafka_start() {
  local pid
  if pid=$(kafka_pid); then
    log "Kafka already running (pid $pid)"
    if [[ $(kafka_server_properties) != "$(cat "$KAFKA_PROPS")" ]]; then
      log "WARNING: this script's Kafka config changed since the broker started; 'scripts/brokers.sh restart kafka' applies it"
    fi
    return 0
  fi
  # Something else owns the port: either a broker that is still dying (just
  # killed: its sockets close a moment later) or one we do not manage (e.g.
  # from another state dir). Starting ours would only fail to bind, so wait
  # for the port to free up, or use the other broker if it really is Kafka.
  local deadline=$((SECONDS + 30)) old_pid
  old_pid=$(cat "$KAFKA_PIDFILE" 2>/dev/null) || true
  while port_open "$KAFKA_PORT"; do
    if [[ $old_pid =~ ^[0-9]+$ && -e /proc/$old_pid ]]; then
      : # our previous broker is still on its way out; just wait for it
    elif kafka_answers; then
      log "WARNING: a Kafka not managed by $STATE_DIR already answers on $HOST:$KAFKA_PORT; using it"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      die "Kafka: port $HOST:$KAFKA_PORT is taken by something that does not answer as a Kafka broker"
    fi
    sleep 1
  done
  kafka_launch
}

KAFKA_LAUNCHED=0
kafka_launch() {
  KAFKA_LAUNCHED=1
  kafka_write_config
  kafka_format
  rm -f "$KAFKA_PIDFILE"
  KAFKA_LOG_START=$(next_line "$KAFKA_LOGS/server.log")
  log "starting Kafka $(kafka_version) on $HOST:$KAFKA_PORT (logs: $KAFKA_LOGS)"
  # setsid + nohup: the broker must outlive this script (and the CI step or
  # terminal that ran it). The inner shell records its own pid and then execs
  # java, so the pid file holds the JVM's pid.
  # shellcheck disable=SC2016  # $$ and $@ are for the inner shell
  setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_PIDFILE" \
    java "${KAFKA_HEAP_OPTS[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-Dkafka.logs.dir=$KAFKA_LOGS" \
    "-Dlog4j2.configurationFile=$SCRIPT_DIR/kafka/log4j2-server.xml" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    >"$KAFKA_LOGS/kafkaServer.out" 2>&1 </dev/null 9>&- &
  # Wait for the pid file to be written (microseconds, but it is a race).
  local _
  for _ in {1..50}; do
    [[ -s $KAFKA_PIDFILE ]] && break
    sleep 0.1
  done
}

KAFKA_LOG_START=1
kafka_fail() { # kafka_fail MESSAGE: log tails + error lines, then exit
  tail_logs "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/kafkaServer.out" "$KAFKA_LOGS/check.err"
  show_errors "$KAFKA_LOGS/server.log" "$KAFKA_LOG_START" 'ERROR|FATAL|^Caused by'
  die "$1"
}

kafka_wait() {
  local deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kafka_pid >/dev/null && ! port_open "$KAFKA_PORT"; then
      if [[ $KAFKA_LAUNCHED -eq 0 ]]; then
        # The broker we found running was on its way out (e.g. just killed by
        # a fault-injection test): start a fresh one on the same data dir.
        log "the running Kafka went away; starting it again"
        kafka_launch
        continue
      fi
      kafka_fail "Kafka: the broker process exited during startup (logs above, in $KAFKA_LOGS)"
    fi
    if kafka_answers; then
      kafka_ensure_scram
      # All listeners open together, so SASL_SSL is up once PLAINTEXT answers;
      # only a broker started with an older config (warned about above) lacks it.
      if port_open "$KAFKA_SASL_SSL_PORT"; then
        log "Kafka is up on $HOST:$KAFKA_PORT (SASL_SSL on $HOST:$KAFKA_SASL_SSL_PORT)"
      elif [[ $KAFKA_LAUNCHED -eq 1 ]]; then
        kafka_fail "Kafka: up on $HOST:$KAFKA_PORT but nothing listens on SASL_SSL $HOST:$KAFKA_SASL_SSL_PORT"
      else
        log "WARNING: the running Kafka has no SASL_SSL listener on $HOST:$KAFKA_SASL_SSL_PORT; 'scripts/brokers.sh restart kafka' adds it"
        log "Kafka is up on $HOST:$KAFKA_PORT"
      fi
      return 0
    fi
    sleep 1
  done
  kafka_fail "Kafka: not answering on $HOST:$KAFKA_PORT after ${TIMEOUT}s (logs above, in $KAFKA_LOGS)"
}

kafka_stop() {
  local pid
  if ! pid=$(kafka_pid); then
    rm -f "$KAFKA_PIDFILE"
    if port_open "$KAFKA_PORT"; then
      log "WARNING: something still listens on $HOST:$KAFKA_PORT but it is not the broker of $STATE_DIR; left alone"
    else
      log "Kafka is not running"
    fi
    return 0
  fi
  log "stopping Kafka (pid $pid)"
  # SIGTERM = controlled shutdown (flushes logs, so the next start needs no
  # log recovery). Escalate only if it hangs.
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "Kafka did not stop within 60s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$KAFKA_PIDFILE"
  log "Kafka stopped"
}

# --------------------------------------------------------------- rabbitmq ---

rabbitmq_install() {
  ensure_cmd curl curl
  if [[ ! -x /usr/sbin/rabbitmq-server ]]; then
    apt_install rabbitmq-server
  fi
}

# Write FILE (as root) only if its content changes, keeping it readable by the
# rabbitmq user that the server runs as.
write_if_changed() { # write_if_changed FILE  (content on stdin)
  local new
  new=$(cat)
  if [[ -f $1 && $(cat "$1") == "$new" ]]; then
    return 0
  fi
  log "writing $1"
  printf '%s\n' "$new" | as_root tee "$1" >/dev/null
  as_root chmod 644 "$1"
}

# /etc/rabbitmq/rabbitmq-env.conf: read by every RabbitMQ script (server and
# CLI tools alike).
rabbit_env_conf() {
  cat <<EOF
# Managed by queue-scaler scripts/brokers.sh (test broker).
# A fixed node name on localhost: independent of the machine's hostname.
NODENAME=$RABBIT_NODENAME
EOF
}

# /etc/rabbitmq/rabbitmq.conf: the server's config.
rabbit_conf() {
  cat <<EOF
# Managed by queue-scaler scripts/brokers.sh (test broker).
# Loopback only: this is a throwaway test broker with guest/guest.
listeners.tcp.default = $HOST:$RABBIT_AMQP_PORT
management.tcp.ip = $HOST
management.tcp.port = $RABBIT_HTTP_PORT
# Refresh queue/message-rate statistics every second (default 5 s): tests
# poll the management API for rates and depths.
collect_statistics_interval = 1000
# ...and keep the management samples at 1 s granularity too: with the default
# 5 s samples the API's queue depths and rates only change every 5 s, whatever
# the collection interval.
management.sample_retention_policies.global.minute = 1
management.sample_retention_policies.global.hour = 60
management.sample_retention_policies.global.day = 1200
management.sample_retention_policies.basic.minute = 1
management.sample_retention_policies.basic.hour = 60
management.sample_retention_policies.detailed.10 = 1
# guest/guest is allowed only from loopback (RabbitMQ's default, kept explicit).
loopback_users.guest = true

# TLS, for the tests of secure connections: AMQPS and the management API over
# HTTPS next to the plain listeners above, presenting the test CA's server
# certificate (copies in $RABBIT_TLS_DIR that the rabbitmq user can read).
# Clients need no certificate of their own.
listeners.ssl.default = $HOST:$RABBIT_AMQPS_PORT
ssl_options.cacertfile = $RABBIT_TLS_DIR/ca.pem
ssl_options.certfile = $RABBIT_TLS_DIR/server.pem
ssl_options.keyfile = $RABBIT_TLS_DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
management.ssl.ip = $HOST
management.ssl.port = $RABBIT_HTTPS_PORT
management.ssl.cacertfile = $RABBIT_TLS_DIR/ca.pem
management.ssl.certfile = $RABBIT_TLS_DIR/server.pem
management.ssl.keyfile = $RABBIT_TLS_DIR/server.key
management.ssl.verify = verify_none
management.ssl.fail_if_no_peer_cert = false
EOF
}

# True if a copy in /etc/rabbitmq/tls differs from the state dir's. The
# certificates are enough (and need no root to read): a new key always comes
# with a new certificate.
rabbit_tls_changed() {
  ! cmp -s "$TLS_CA" "$RABBIT_TLS_DIR/ca.pem" || ! cmp -s "$TLS_CERT" "$RABBIT_TLS_DIR/server.pem"
}

# Copy FILE into /etc/rabbitmq/tls (as root) only if its content changes.
rabbit_tls_copy() { # rabbit_tls_copy SOURCE NAME MODE
  local dest=$RABBIT_TLS_DIR/$2
  as_root cmp -s "$1" "$dest" && return 0
  log "writing $dest"
  as_root install -o root -g rabbitmq -m "$3" "$1" "$dest"
}

# The node runs as the rabbitmq user, which can read neither the 0600 key in
# the state dir nor, maybe, the state dir itself (a developer's home), so it
# gets root-owned copies; only group rabbitmq may read the key's. The
# certificates stay world-readable (rabbit_tls_changed reads them without root).
rabbit_tls_install() {
  [[ -s $TLS_CERT && -s $TLS_KEY && -s $TLS_CA ]] || die "RabbitMQ: no TLS certificate in $TLS_DIR"
  as_root install -d -o root -g rabbitmq -m 755 "$RABBIT_TLS_DIR"
  # Key before certificate: never a new certificate with the old key.
  rabbit_tls_copy "$TLS_CA" ca.pem 644
  rabbit_tls_copy "$TLS_KEY" server.key 640
  rabbit_tls_copy "$TLS_CERT" server.pem 644
}

# True if the config files (TLS files included) differ from what this script
# would write.
rabbit_config_changed() {
  [[ $(rabbit_env_conf) != "$(cat "$RABBIT_ETC/rabbitmq-env.conf" 2>/dev/null)" ||
     $(rabbit_conf) != "$(cat "$RABBIT_ETC/rabbitmq.conf" 2>/dev/null)" ]] || rabbit_tls_changed
}

rabbit_configure() {
  as_root mkdir -p "$RABBIT_ETC"
  # The TLS files before the config that names them.
  rabbit_tls_install
  rabbit_env_conf | write_if_changed "$RABBIT_ETC/rabbitmq-env.conf"
  rabbit_conf | write_if_changed "$RABBIT_ETC/rabbitmq.conf"
  if ! grep -qs 'rabbitmq_management' "$RABBIT_ETC/enabled_plugins"; then
    log "enabling rabbitmq_management plugin"
    as_root rabbitmq-plugins enable --offline rabbitmq_management >&2 \
      || die "RabbitMQ: enabling the management plugin failed"
  fi
}

rabbitmqctl_q() { as_root rabbitmqctl -q "$@"; }

RABBIT_LOG_FILES=("$RABBIT_LOG_DIR/$RABBIT_NODENAME.log" "$RABBIT_LOG_DIR/startup_err" "$RABBIT_LOG_DIR/startup_log")

# HTTP status of the management API's overview with guest:guest.
rabbit_http_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -u guest:guest \
    "http://$HOST:$RABBIT_HTTP_PORT/api/overview" 2>/dev/null || true
}

# The same over HTTPS, trusting only the test CA (000 if the TLS handshake or
# the certificate check fails).
rabbit_https_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$TLS_CA" -u guest:guest \
    "https://$HOST:$RABBIT_HTTPS_PORT/api/overview" 2>/dev/null || true
}

# Is the Erlang VM of our node alive at all (booting or booted)? The node
# writes its OS pid to mnesia/<node>.pid early in boot; the command line does
# not name the node, so that file is the reliable link. A stale file (node
# killed with SIGKILL) is detected by checking the pid is still a beam.smp.
rabbit_vm_running() {
  local pid
  pid=$(as_root cat "$RABBIT_PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == beam.smp ]]
}

rabbit_answers() {
  port_open "$RABBIT_AMQP_PORT" || return 1
  port_open "$RABBIT_AMQPS_PORT" || return 1
  rabbitmqctl_q await_startup --timeout 10 >/dev/null 2>&1 || return 1
  [[ $(rabbit_http_code) == 200 ]]
}

rabbitmq_start() {
  if rabbit_vm_running; then
    log "RabbitMQ already running (node $RABBIT_NODENAME)"
    if rabbit_config_changed; then
      log "WARNING: this script's RabbitMQ config changed since the node started; 'scripts/brokers.sh restart rabbitmq' applies it"
    fi
    return 0
  fi
  if port_open "$RABBIT_AMQP_PORT"; then
    die "RabbitMQ: port $HOST:$RABBIT_AMQP_PORT is taken by something that is not node $RABBIT_NODENAME"
  fi
  rabbit_launch
}

RABBIT_LAUNCHED_AT=-1
RABBIT_LOG_START=1
rabbit_fail() { # rabbit_fail MESSAGE: log tails + the boot error, then exit
  local log=${RABBIT_LOG_FILES[0]} boot
  tail_logs "${RABBIT_LOG_FILES[@]}"
  # A failed boot logs a "BOOT FAILED" block with the reason as an Erlang term
  # (e.g. ... {listen_error, ..., eaddrinuse}); show it without the prefixes.
  boot=$(tail -n "+$RABBIT_LOG_START" "$log" 2>/dev/null | grep -m1 -A 30 'BOOT FAILED' \
         | sed 's/^[^]]*\] <[^>]*> //') || true
  if [[ -n $boot ]]; then
    printf '[brokers] ---- boot failure reported in %s ----\n%s\n' "$log" "$boot" >&2
  else
    show_errors "$log" "$RABBIT_LOG_START" '\[(error|critical|alert|emergency)\]'
  fi
  die "$1"
}

rabbit_launch() {
  RABBIT_LAUNCHED_AT=$SECONDS
  RABBIT_LOG_START=$(next_line "${RABBIT_LOG_FILES[0]}")
  rabbit_configure
  log "starting RabbitMQ (node $RABBIT_NODENAME, logs: $RABBIT_LOG_DIR)"
  # As root, Debian's /usr/sbin/rabbitmq-server wrapper re-runs itself as the
  # rabbitmq user (su). -detached daemonises the Erlang VM and returns.
  as_root rabbitmq-server -detached >&2 9>&- \
    || rabbit_fail "RabbitMQ: rabbitmq-server -detached failed"
}

rabbitmq_wait() {
  local deadline=$((SECONDS + TIMEOUT))
  # 1. The node has fully booted (all plugins included).
  until rabbitmqctl_q await_startup --timeout 10 >/dev/null 2>&1; do
    # rabbitmqctl fails at once while the VM is not yet reachable.
    if ! rabbit_vm_running; then
      if ((RABBIT_LAUNCHED_AT < 0)); then
        # The node we found running was on its way out (e.g. just killed by
        # a fault-injection test): start a fresh one.
        log "the running RabbitMQ went away; starting it again"
        rabbit_launch
        continue
      elif ((SECONDS - RABBIT_LAUNCHED_AT > 15)); then
        # The pid file appears a few seconds into boot; a VM still absent
        # after that (bad config, port clash, ...) will never come up.
        rabbit_fail "RabbitMQ: the server process exited during startup (logs above, in $RABBIT_LOG_DIR)"
      fi
    fi
    if ((SECONDS >= deadline)); then
      rabbit_fail "RabbitMQ: 'rabbitmqctl await_startup' did not succeed within ${TIMEOUT}s"
    fi
    sleep 1
  done
  # 2. The management API answers with guest:guest.
  until [[ $(rabbit_http_code) == 200 ]]; do
    if ((SECONDS >= deadline)); then
      rabbit_fail "RabbitMQ: management API http://$HOST:$RABBIT_HTTP_PORT/api/overview did not answer 200 within ${TIMEOUT}s (last: $(rabbit_http_code))"
    fi
    sleep 1
  done
  port_open "$RABBIT_AMQP_PORT" || die "RabbitMQ: booted but nothing listens on $HOST:$RABBIT_AMQP_PORT"
  # 3. The TLS listeners, checked the way tests use them: AMQPS accepts
  # connections and the HTTPS API answers with a certificate from the test CA.
  local tls=" and TLS: amqps $HOST:$RABBIT_AMQPS_PORT, https $HOST:$RABBIT_HTTPS_PORT"
  until port_open "$RABBIT_AMQPS_PORT" && [[ $(rabbit_https_code) == 200 ]]; do
    if ((RABBIT_LAUNCHED_AT < 0)); then
      # A node started before TLS was configured (or with another CA); the
      # config-changed warning above says how to apply it.
      log "WARNING: the running RabbitMQ has no TLS listeners on $HOST:$RABBIT_AMQPS_PORT/$RABBIT_HTTPS_PORT with a certificate from $TLS_CA; 'scripts/brokers.sh restart rabbitmq' applies the config"
      tls=
      break
    fi
    if ((SECONDS >= deadline)); then
      rabbit_fail "RabbitMQ: TLS listeners $HOST:$RABBIT_AMQPS_PORT / https://$HOST:$RABBIT_HTTPS_PORT/api/overview not answering within ${TIMEOUT}s (last HTTPS status: $(rabbit_https_code))"
    fi
    sleep 1
  done
  log "RabbitMQ is up on $HOST:$RABBIT_AMQP_PORT (management on $HOST:$RABBIT_HTTP_PORT$tls)"
}

rabbitmq_stop() {
  if ! rabbit_vm_running; then
    log "RabbitMQ is not running"
    return 0
  fi
  log "stopping RabbitMQ (rabbitmqctl shutdown)"
  # `shutdown` stops the node and waits until its OS process has exited.
  if ! rabbitmqctl_q shutdown >&2; then
    rabbit_fail "RabbitMQ: 'rabbitmqctl shutdown' failed"
  fi
  log "RabbitMQ stopped"
}

# ------------------------------------------------------------------- main ---

print_env() { # print_env [kafka] [rabbitmq]
  local b
  for b in "$@"; do
    case $b in
      kafka)
        echo "export QUEUE_SCALER_TEST_KAFKA=$HOST:$KAFKA_PORT"
        echo "export QUEUE_SCALER_TEST_KAFKA_PROXIED_LISTENER=$HOST:$KAFKA_PROXIED_PORT"
        echo "export QUEUE_SCALER_TEST_KAFKA_PROXY_ADDRESS=$HOST:$KAFKA_PROXY_PORT"
        echo "export QUEUE_SCALER_TEST_KAFKA_SASL_SSL=$HOST:$KAFKA_SASL_SSL_PORT"
        echo "export QUEUE_SCALER_TEST_KAFKA_SASL_USER=$KAFKA_SASL_USER"
        echo "export QUEUE_SCALER_TEST_KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD" ;;
      rabbitmq)
        echo "export QUEUE_SCALER_TEST_RABBITMQ_AMQP=amqp://guest:guest@$HOST:$RABBIT_AMQP_PORT/"
        echo "export QUEUE_SCALER_TEST_RABBITMQ_HTTP=http://guest:guest@$HOST:$RABBIT_HTTP_PORT/"
        echo "export QUEUE_SCALER_TEST_RABBITMQ_AMQPS=amqps://guest:guest@$HOST:$RABBIT_AMQPS_PORT/"
        echo "export QUEUE_SCALER_TEST_RABBITMQ_HTTPS=https://guest:guest@$HOST:$RABBIT_HTTPS_PORT/" ;;
    esac
  done
  # Both brokers' TLS listeners use certificates from this CA. Quoted for eval
  # (the state dir may contain spaces); printf %q leaves plain paths bare.
  printf 'export QUEUE_SCALER_TEST_TLS_CA=%q\n' "$TLS_CA"
}

usage() {
  sed -n '/^# Usage:/,/^# State dir layout/{/^# State dir layout/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

# Serialise up/down/restart (e.g. parallel CI steps or test workers).
# The brokers are started with fd 9 closed (`9>&-`): a daemon that inherited
# it would hold this lock for its whole life.
take_lock() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  if ! flock -w 600 9; then
    die "another scripts/brokers.sh has held $STATE_DIR/.lock for 10 minutes; giving up"
  fi
}

cmd_up() {
  take_lock
  local b
  # Install everything first (including the TLS certificate both brokers
  # use), then start both, then wait for both: the two brokers boot in parallel.
  tls_ensure
  for b in "$@"; do "${b}_install"; done
  for b in "$@"; do "${b}_start"; done
  for b in "$@"; do "${b}_wait"; done
  print_env "$@"
}

cmd_down() {
  take_lock
  local b
  for b in "$@"; do "${b}_stop"; done
}

cmd_status() {
  local b rc=0 pid
  for b in "$@"; do
    case $b in
      kafka)
        if kafka_answers && port_open "$KAFKA_SASL_SSL_PORT"; then
          pid=$(kafka_pid) || pid="not ours"
          echo "kafka: up ($HOST:$KAFKA_PORT, SASL_SSL $HOST:$KAFKA_SASL_SSL_PORT, pid $pid, Kafka $(kafka_version))"
        else
          echo "kafka: down ($HOST:$KAFKA_PORT not answering or nothing on SASL_SSL $HOST:$KAFKA_SASL_SSL_PORT)"
          rc=1
        fi ;;
      rabbitmq)
        if rabbit_answers; then
          echo "rabbitmq: up (amqp $HOST:$RABBIT_AMQP_PORT, amqps $HOST:$RABBIT_AMQPS_PORT, management $HOST:$RABBIT_HTTP_PORT + https $HOST:$RABBIT_HTTPS_PORT, node $RABBIT_NODENAME)"
        else
          echo "rabbitmq: down (node $RABBIT_NODENAME / $HOST:$RABBIT_AMQP_PORT / $HOST:$RABBIT_AMQPS_PORT / management API not all answering)"
          rc=1
        fi ;;
    esac
  done
  return "$rc"
}

cmd_logs() {
  local b
  for b in "$@"; do
    case $b in
      kafka) tail_logs "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/kafkaServer.out" ;;
      rabbitmq) tail_logs "${RABBIT_LOG_FILES[@]}" ;;
    esac
  done
}

# SIGKILL, for fault-injection tests: no controlled shutdown, no flush; `up` restarts it.
cmd_kill() {
  local b pid
  for b in "$@"; do
    case $b in
      kafka)
        if pid=$(kafka_pid); then
          log "killing Kafka (SIGKILL, pid $pid)"
          kill -KILL "$pid"
          while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi ;;
      rabbitmq)
        if [[ -s $RABBIT_PIDFILE ]] && pid=$(cat "$RABBIT_PIDFILE") && kill -0 "$pid" 2>/dev/null; then
          log "killing RabbitMQ (SIGKILL, pid $pid)"
          kill -KILL "$pid"
          while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi ;;
    esac
  done
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  local brokers=()
  case ${1:-all} in
    all) brokers=(kafka rabbitmq) ;;
    kafka | rabbitmq) brokers=("$1") ;;
    *) usage; die "unknown broker '$1' (expected kafka, rabbitmq or nothing for both)" ;;
  esac
  case $cmd in
    up) cmd_up "${brokers[@]}" ;;
    down | stop) cmd_down "${brokers[@]}" ;;
    restart) cmd_down "${brokers[@]}"; cmd_up "${brokers[@]}" ;;
    kill) cmd_kill "${brokers[@]}" ;;
    status) cmd_status "${brokers[@]}" ;;
    env) print_env kafka rabbitmq ;;
    logs) cmd_logs "${brokers[@]}" ;;
    -h | --help | help) usage ;;
    *) usage; die "unknown command '${cmd}'" ;;
  esac
}

main "$@"
