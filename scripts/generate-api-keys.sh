#!/usr/bin/env bash
# Write .env.production from .env.production.template with fresh secrets.
#
#   scripts/generate-api-keys.sh [--force] [--output PATH] [--template PATH]
#
# Every `NAME=CHANGE_ME` line of the template gets a new value: an RS256 signing key pair
# for JWT_PRIVATE_KEYS (`<kid>:<base64 of the PEM>`, as user-service loads it) and its kid
# for JWT_ACTIVE_KID; 32 random bytes (64 hex characters) for everything else (service
# keys, database role, Redis, RabbitMQ admin and per-service broker (AMQP_PASSWORD_*) and
# Grafana passwords, webhook and payment-provider secrets). Every other line is copied as it is.
#
# The file is created with mode 600 (the umask is set before anything is written). An
# existing file is never overwritten without --force: regenerating rotates every secret,
# which means restarting the whole platform. Nothing secret is printed. Needs only
# bash and openssl.
set -euo pipefail
umask 077

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
template="$ROOT/.env.production.template"
output="$ROOT/.env.production"
force=0

usage() {
    sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

while (($#)); do
    case "$1" in
    --force) force=1 ;;
    --output)
        [[ $# -ge 2 ]] || { usage; exit 2; }
        output="$2"
        shift
        ;;
    --template)
        [[ $# -ge 2 ]] || { usage; exit 2; }
        template="$2"
        shift
        ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 2 ;;
    esac
    shift
done

command -v openssl >/dev/null || { echo "generate-api-keys: openssl is required" >&2; exit 1; }
[[ -f "$template" ]] || { echo "generate-api-keys: no template at $template" >&2; exit 1; }
if [[ -e "$output" && $force -ne 1 ]]; then
    echo "generate-api-keys: $output exists; not overwriting it (use --force to rotate every secret)" >&2
    exit 1
fi

random_secret() {
    openssl rand -hex 32
}

# The key pair: a PKCS#8 PEM, base64 on one line so env files and Kubernetes Secrets
# carry it unchanged. It goes from openssl to a variable through a pipe, never to disk.
kid="k$(date -u +%Y%m%d)-$(openssl rand -hex 4)"
if ! signing_key="$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 2>/dev/null | openssl base64 -A)" \
    || [[ -z "$signing_key" ]]; then
    echo "generate-api-keys: openssl could not generate the signing key" >&2
    exit 1
fi

# Written next to the target, then renamed over it: a reader never sees half a file.
tmp="$(mktemp "$(dirname "$output")/.env.production.XXXXXX")"
trap 'rm -f "$tmp"' EXIT

generated=0
while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" =~ ^([A-Z][A-Z0-9_]*)=CHANGE_ME$ ]]; then
        name="${BASH_REMATCH[1]}"
        case "$name" in
        JWT_PRIVATE_KEYS) value="$kid:$signing_key" ;;
        JWT_ACTIVE_KID) value="$kid" ;;
        *) value="$(random_secret)" ;;
        esac
        printf '%s=%s\n' "$name" "$value" >>"$tmp"
        generated=$((generated + 1))
    else
        printf '%s\n' "$line" >>"$tmp"
    fi
done <"$template"

mv -f "$tmp" "$output"
trap - EXIT
echo "wrote $output (mode 600): $generated secrets generated, JWT signing key $kid"
echo "next: review the non-secret settings in it (FLOW_PUBLIC_HOSTS, FLOW_TLS_DIR, BOOTSTRAP_ADMIN_EMAIL, SMTP_*)"
