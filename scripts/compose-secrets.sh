#!/usr/bin/env bash
# Writes the secrets that docker-compose.yml needs into .env, beside it, where
# docker compose reads them: the passwords of the NATS users admin, dashboard and
# job, the token that reads the dashboard, and the token of the collector's event
# ingest. Each is 32 random characters. A secret already in .env is kept, so running
# this again changes nothing; the file is readable by its owner only, and
# .gitignore and .dockerignore keep it out of git and of the images.
set -euo pipefail
cd "$(dirname "$0")/.."

env_file=.env
touch "$env_file"
chmod 600 "$env_file"

for key in MINIRAY_NATS_ADMIN_PASSWORD MINIRAY_NATS_DASHBOARD_PASSWORD \
  MINIRAY_NATS_JOB_PASSWORD MINIRAY_DASHBOARD_TOKEN MINIRAY_INGEST_TOKEN; do
  if grep -q "^${key}=." "$env_file"; then
    echo "$key: kept"
    continue
  fi
  # 24 random bytes in URL-safe base64: 32 characters, nothing to quote.
  secret=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
  printf '%s=%s\n' "$key" "$secret" >>"$env_file"
  echo "$key: written to $env_file"
done

echo
echo "After docker compose up, log in to the dashboard with its token:"
echo "  http://localhost:8080/login   (the token is MINIRAY_DASHBOARD_TOKEN in $env_file)"
