# The Accord image: the `accord` command, its stream worker and its schema registry.
#
#   docker build -t accord:0.1.0 .
#   docker run --rm accord:0.1.0 settings      # any `accord` command; the default is `worker`
#
# Three stages: the first compiles the console's front-end assets with npm (GOV.UK and MOJ
# Frontend, as services/accord/console/assets/package-lock.json pins them), the second
# builds a virtual environment and lays those assets into the installed package where the
# console serves them from, the third copies only that environment and the data the
# settings read (schemas/, policies/ and partners/ under ACCORD_HOME). Every dependency comes from requirements.lock, pinned and checked against
# its hashes (what `make unit` installs too); every one ships binary wheels, so no
# compiler is installed in either stage.

ARG PYTHON_IMAGE=python:3.11-slim
# An exact Node.js release (Node 18 or newer builds the assets); npm comes with it.
ARG NODE_IMAGE=node:22.12.0-bookworm-slim

# --- console assets ---------------------------------------------------------------------
FROM ${NODE_IMAGE} AS assets

ENV NPM_CONFIG_UPDATE_NOTIFIER=false

WORKDIR /assets
# The lock first: `npm ci` installs exactly what it pins (and fails if package.json and the
# lock disagree), so editing the stylesheet reuses this layer.
COPY services/accord/console/assets/package.json services/accord/console/assets/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY services/accord/console/assets/scss/ scss/
RUN npm run build \
 && test -s dist/console.css

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

# Only what the console serves (accord.console.app: ASSETS_DIR): the compiled stylesheet,
# GOV.UK Frontend's script and the MOJ Frontend's icons. Not the rest of node_modules (sass,
# axe-core are build and test tools). Laid into the installed package, wherever the
# Python version puts it, so the runtime stage's copy of /opt/venv carries them.
COPY --from=assets /assets/dist/ /tmp/console-assets/dist/
COPY --from=assets /assets/node_modules/govuk-frontend/dist/govuk/ /tmp/console-assets/node_modules/govuk-frontend/dist/govuk/
COPY --from=assets /assets/node_modules/@ministryofjustice/frontend/moj/assets/images/ /tmp/console-assets/node_modules/@ministryofjustice/frontend/moj/assets/images/
RUN /opt/venv/bin/python -c "import shutil, accord.console.app as app; shutil.copytree('/tmp/console-assets', app.ASSETS_DIR, dirs_exist_ok=True); assert app.assets_built(), 'console assets missing'" \
 && rm -rf /tmp/console-assets

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
