#!/bin/sh
# Writes the secrets of compose-postgres.yml, once:
#   DIR/tokens             bearer tokens of the API (one per line; kept if present)
#   DIR/postgres-password  the password of the PostgreSQL role sbida (POSTGRES_PASSWORD_FILE)
#   DIR/sbida-db.env       SBIDA_DB=postgresql://sbida:PASSWORD@postgres:5432/sbida for the replicas
# DIR defaults to var/ at the top of the repository (where compose-postgres.yml looks).
# The password only takes effect when the database volume is first initialized, so an
# existing password file is never replaced: remove both it and the volume to start over.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/var}
mkdir -p "$dir"
if [ -e "$dir/postgres-password" ] || [ -e "$dir/sbida-db.env" ]; then
  echo "compose-postgres-secrets: $dir/postgres-password or sbida-db.env exists; not replacing it" >&2
  exit 1
fi
# letters and digits only: the password goes into a URL unescaped
rand() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }
umask 022
if [ ! -s "$dir/tokens" ]; then
  rand > "$dir/tokens"
  echo >> "$dir/tokens"
fi
pw=$(rand)
# The containers read these two as bind mounts under their own uid (sbidad 10001,
# postgres 999): they must be readable by others on this host.
printf '%s\n' "$pw" > "$dir/postgres-password"
umask 077
printf 'SBIDA_DB=postgresql://sbida:%s@postgres:5432/sbida\n' "$pw" > "$dir/sbida-db.env"
echo "compose-postgres-secrets: wrote $dir/tokens, $dir/postgres-password, $dir/sbida-db.env"
