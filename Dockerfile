# The Accord image: the `accord` command, its stream worker and its schema registry.
#
#   docker build -t accord:0.1.0 .
#   docker run --rm accord:0.1.0 settings      # any `accord` command; the default is `worker`
#
# Two stages: the first builds a virtual environment, the second copies only that
# environment and the data the settings read (schemas/, policies/ and partners/ under
# ACCORD_HOME). Every dependency comes from requirements.lock, pinned and checked against
# its hashes (what `make unit` installs too); every one ships binary wheels, so no
# compiler is installed in either stage.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A venv without pip: the image's own pip installs into it (--python), so pip itself
# never ends up in the runtime environment.
RUN python -m venv --without-pip /opt/venv

WORKDIR /src

# Dependencies first, from the hashed lock, so editing the code reuses this layer. Nothing
# is resolved: a package or a hash the lock does not name fails the build.
COPY pyproject.toml requirements.lock ./
RUN python -m pip --python /opt/venv/bin/python install --require-hashes --no-deps \
        -r requirements.lock

# The package alone, built with the lock's own setuptools (no build isolation, so no
# unpinned build dependency is fetched).
COPY services/ services/
RUN python -m pip --python /opt/venv/bin/python install --no-deps --no-build-isolation .

# --- runtime ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="accord" \
      org.opencontainers.image.description="Data-sharing hub that enforces data-sharing agreements on every record" \
      org.opencontainers.image.version="0.1.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ACCORD_HOME=/app

RUN groupadd --system --gid 10001 accord \
 && useradd --system --uid 10001 --gid accord --create-home --home-dir /home/accord \
        --shell /usr/sbin/nologin accord

COPY --from=build /opt/venv /opt/venv
# Read-only data, owned by root: the service user can read but not change it.
COPY schemas/ /app/schemas/
COPY policies/ /app/policies/
# OPA's authorisation policy, laid into the Helm chart's policy bundle (deploy/k8s).
COPY deploy/opa/authz.rego /app/deploy/opa/authz.rego
COPY partners/ /app/partners/
COPY config/ /app/config/

# Numeric, so an orchestrator can verify the user is not root without reading /etc/passwd.
USER 10001:10001
# The worker keeps its (small) local state directory in the working directory.
WORKDIR /home/accord

ENTRYPOINT ["accord"]
CMD ["worker"]
