# syntax=docker/dockerfile:1
#
# Image for the local docker compose stack (docker-compose.yaml): the official Airflow image plus
# this provider with its `jks`, `devserver` and `redis` extras, the Celery provider for the Celery worker,
# and the demo authorization server (`devserver/`, which is not part of the wheel).
#
#   docker compose build        # or: docker build -t airflow-jwt-provider:local .
#
# Not a production image: see docs/compose.md.

# ---------------------------------------------------------------------------------------------
# Stage 1: compile the C extension of `twofish` (a dependency of pyjks, the `jks` extra) into a
# wheel, so that the compiler never reaches the final image.
# ---------------------------------------------------------------------------------------------
FROM apache/airflow:3.3.2-python3.11 AS twofish-wheel

USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

USER airflow
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels "twofish==0.3.0"

# ---------------------------------------------------------------------------------------------
# Stage 2: the image every service of the stack runs (Airflow components and the authserver).
# The provider's `redis` extra (apache-airflow-providers-redis) lets the stack share tokens
# through the broker's Redis (token_cache: redis).
# ---------------------------------------------------------------------------------------------
FROM apache/airflow:3.3.2-python3.11

COPY --from=twofish-wheel /tmp/wheels /opt/wheels

# The whole repository (minus what .dockerignore drops: .venv, .git, caches, keystores, ...).
# Owned by airflow because pip builds the provider in-tree (it writes *.egg-info there).
COPY --chown=airflow:0 . /opt/provider

# Pinning apache-airflow to the image's own version keeps pip from up- or downgrading Airflow
# (the official image's recommendation). `--only-binary twofish` makes pip take the wheel built
# above; there is no compiler in this stage. The Celery provider runs `airflow celery worker`.
RUN pip install --no-cache-dir \
        --find-links /opt/wheels --only-binary twofish \
        "apache-airflow==${AIRFLOW_VERSION}" \
        "/opt/provider[jks,devserver,redis]" \
        apache-airflow-providers-celery

# The demo authorization server, importable as `devserver` with PYTHONPATH=/opt/devserver
# (set by the authserver and airflow-init services).
COPY --chown=airflow:0 devserver/ /opt/devserver/devserver/

# Mount points of the `keys` and `logs` volumes. A new named volume takes the ownership of the
# directory it is mounted on, so these must belong to airflow: airflow-init writes the demo
# keystore into `keys`, every component writes into `logs`.
RUN mkdir -p -m 0770 /opt/airflow/keys /opt/airflow/logs
