# One image for every service: `sandwich serve SERVICE` runs one, `sandwich migrate` the migrations.
# Build: docker build -t REGISTRY/sandwich:VERSION .   (deploy/helm/sandwich sets image.repository/tag)
# Dependencies come from deploy/requirements.lock, every version pinned and hashed (regenerate it with
# `uv pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28
#  --generate-hashes --no-header -o deploy/requirements.lock`; tests/unit/deploy checks it agrees).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/sandwich
COPY deploy/requirements.lock /tmp/requirements.lock
RUN /opt/sandwich/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock
COPY pyproject.toml README.md /src/
COPY src /src/src
# The project itself on top of the locked dependencies: --no-deps, so nothing unpinned comes in.
RUN /opt/sandwich/bin/pip install --no-deps /src \
 && /opt/sandwich/bin/python -m compileall -q /opt/sandwich

FROM ${PYTHON_IMAGE}
# Bytecode was compiled at build time: a read-only root filesystem needs no __pycache__ writes.
ENV PATH=/opt/sandwich/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SANDWICH_HOST=0.0.0.0 \
    SANDWICH_PORT=8080 \
    SANDWICH_DATA_DIR=/tmp/sandwich \
    SANDWICH_SECRETS_DIR=/var/run/sandwich/secrets
RUN groupadd --system --gid 10001 sandwich \
 && useradd --system --uid 10001 --gid sandwich --no-create-home --shell /usr/sbin/nologin sandwich
COPY --from=build /opt/sandwich /opt/sandwich
USER 10001:10001
EXPOSE 8080
# Writable only /tmp (an emptyDir in the chart); secrets are mounted read-only under /var/run/sandwich.
ENTRYPOINT ["sandwich"]
CMD ["serve", "gateway"]
