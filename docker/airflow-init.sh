#!/usr/bin/env bash
# One-shot initialisation of the docker compose stack, run by the `airflow-init` service:
#   1. migrate the Airflow metadata database (postgres);
#   2. create the demo PKCS#12 keystore in the shared `keys` volume, which the authserver reads
#      its certificate from and the jwt_bearer_default connection signs its assertions with.
# Both steps are idempotent: running `docker compose up` again keeps the keystore.
set -euo pipefail

: "${JWT_DEMO_KEYSTORE:?JWT_DEMO_KEYSTORE must name the keystore file to create}"
: "${JWT_DEMO_KEYSTORE_PASSWORD:?JWT_DEMO_KEYSTORE_PASSWORD must be set}"
DEVSERVER_PATH="${DEVSERVER_PATH:-/opt/devserver}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

echo "airflow-init: Airflow $(airflow version)"

echo "airflow-init: migrating the metadata database"
airflow db migrate

echo "airflow-init: demo keystore ${JWT_DEMO_KEYSTORE}"
PYTHONPATH="${DEVSERVER_PATH}${PYTHONPATH:+:${PYTHONPATH}}" \
    python "${here}/make_keystore.py" \
    --keystore "${JWT_DEMO_KEYSTORE}" \
    --password "${JWT_DEMO_KEYSTORE_PASSWORD}"

# A copy of the demo connection stored in the database, so that it shows in the UI's connection
# list with a working Test button (connections from environment variables are not listed; and in
# Airflow 3.3.2 the list's Test button needs a stored port, see docs/connection.md).
if ! airflow connections get jwt_bearer_ui >/dev/null 2>&1; then
    echo "airflow-init: adding the jwt_bearer_ui connection"
    airflow connections add jwt_bearer_ui --conn-json "$(cat <<JSON
{"conn_type": "jwt_bearer", "host": "http://authserver/api", "port": 8080, "login": "demo-client",
 "extra": {"auth_url": "http://authserver:8080/oauth2/token", "key_file": "${JWT_DEMO_KEYSTORE}",
           "keystore_password": "${JWT_DEMO_KEYSTORE_PASSWORD}", "subject": "demo-user"}}
JSON
)"
fi

echo "airflow-init: done"
