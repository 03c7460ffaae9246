#!/bin/sh
# The RabbitMQ users of zenoti-events with rabbitmqctl, for a broker without the messaging
# topology operator: the same users and permissions as deploy/k8s/base/rabbitmq-users.yaml
# (tests/deploy/test_rabbitmq_users.py keeps them equal; deploy/README.md, "Least privilege on
# the broker", says why each permission is there). Safe to run again: it updates passwords,
# tags and permissions in place.
#
#   TOPOLOGY_PASSWORD=... INGRESS_PASSWORD=... WORKER_PASSWORD=... CONSOLE_PASSWORD=... \
#     KEDA_PASSWORD=... deploy/rabbitmq/users.sh
#
# Settings (environment): VHOST (default /), PREFIX of the user names (default zenoti-events:
# zenoti-events-topology, -ingress, -worker, -console, -keda), RABBITMQCTL (default
# rabbitmqctl; e.g. "kubectl -n NS exec -i zenoti-events-rabbitmq-server-0 -- rabbitmqctl").
# Passwords go to rabbitmqctl on its standard input, never as arguments (which any process on
# the host can list); generate them with `openssl rand -hex 24` (hex: nothing to escape in an
# AMQP URL).
set -eu

VHOST=${VHOST:-/}
PREFIX=${PREFIX:-zenoti-events}
RABBITMQCTL=${RABBITMQCTL:-rabbitmqctl}
: "${TOPOLOGY_PASSWORD:?set TOPOLOGY_PASSWORD}" "${INGRESS_PASSWORD:?set INGRESS_PASSWORD}"
: "${WORKER_PASSWORD:?set WORKER_PASSWORD}" "${CONSOLE_PASSWORD:?set CONSOLE_PASSWORD}"
: "${KEDA_PASSWORD:?set KEDA_PASSWORD}"

# Only `zenoti-events topology` declares: configure on every zenoti.* entity, and what RabbitMQ
# asks besides for each declaration (write on binding, alternate and dead-letter targets, read on
# binding sources and on every queue with a dead-letter exchange); tag policymaker, to put the
# policies over the management API. The ingress and workers run with DECLARE_TOPOLOGY=false: a
# passive check needs no permission, so they get only what publishing and consuming need. See
# deploy/k8s/base/rabbitmq-users.yaml for each part.
TOPOLOGY_CONFIGURE='^zenoti\.(ingress|ingress\.parked|events|unrouted|dead|enriched|enriched\.unclaimed|archive|h\.[^.]+(\.dead|\.retry\..+)?)$'
TOPOLOGY_WRITE='^(amq\.default|zenoti\.(ingress|ingress\.parked|events|unrouted|dead|enriched\.unclaimed|archive|h\.[^.]+(\.dead)?))$'
TOPOLOGY_READ='^zenoti\.(ingress|ingress\.parked|events|unrouted|dead|enriched|enriched\.unclaimed|h\.[^.]+(\.dead|\.retry\..+)?)$'
INGRESS_WRITE='^zenoti\.ingress(\.parked)?$'
WORKER_WRITE='^(amq\.default|zenoti\.(enriched|dead|events))$'
WORKER_READ='^zenoti\.(unrouted|archive|h\.[^.]+(\.dead)?)$'
# The console reads the parking lots, zenoti.unrouted and the archive (never a work queue) and
# publishes where a kept, replayed or unrouted message goes: the default exchange, zenoti.events.
CONSOLE_WRITE='^(amq\.default|zenoti\.events)$'
CONSOLE_READ='^zenoti\.(unrouted|archive|h\.[^.]+\.dead)$'
NOTHING='^$'

ctl() {
    # shellcheck disable=SC2086 # RABBITMQCTL may be a command with arguments
    $RABBITMQCTL -q "$@"
}

user() { # name password tags
    if ctl list_users | cut -f1 | grep -qx "$1"; then
        printf '%s\n' "$2" | ctl change_password "$1"
    else
        printf '%s\n' "$2" | ctl add_user "$1"
    fi
    ctl set_user_tags "$1" $3
}

user "$PREFIX-topology" "$TOPOLOGY_PASSWORD" policymaker
ctl set_permissions -p "$VHOST" "$PREFIX-topology" "$TOPOLOGY_CONFIGURE" "$TOPOLOGY_WRITE" "$TOPOLOGY_READ"

user "$PREFIX-ingress" "$INGRESS_PASSWORD" ""
ctl set_permissions -p "$VHOST" "$PREFIX-ingress" "$NOTHING" "$INGRESS_WRITE" "$NOTHING"

user "$PREFIX-worker" "$WORKER_PASSWORD" ""
ctl set_permissions -p "$VHOST" "$PREFIX-worker" "$NOTHING" "$WORKER_WRITE" "$WORKER_READ"

user "$PREFIX-console" "$CONSOLE_PASSWORD" ""
ctl set_permissions -p "$VHOST" "$PREFIX-console" "$NOTHING" "$CONSOLE_WRITE" "$CONSOLE_READ"

# KEDA reads queue depths through the management API: tag monitoring, and an entry on the vhost
# that matches nothing (the entry is what lets it see the vhost's queues).
user "$PREFIX-keda" "$KEDA_PASSWORD" monitoring
ctl set_permissions -p "$VHOST" "$PREFIX-keda" "$NOTHING" "$NOTHING" "$NOTHING"
