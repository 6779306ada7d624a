# syntax=docker/dockerfile:1.7
# phigate: multi-stage, slim, non-root. Serves against DATABASE_URL (a managed
# PostgreSQL with sslmode=verify-full); the embedded database is not used in images.
# Production mode: it serves only over TLS (PHIGATE_TLS_CERT_FILE/_KEY_FILE, mounted
# secrets) or behind a TLS-terminating proxy (PHIGATE_BEHIND_PROXY=true with
# PHIGATE_TRUSTED_PROXIES), and needs its keys (PHIGATE_MASTER_KEY_FILE or
# PHIGATE_KMS_WRAPPED_KEKS, and PHIGATE_BLIND_INDEX_KEY_FILE). `phigate check` says
# what is missing.
#
#   docker build -t phigate .
#   docker run --rm -e PHIGATE_MIGRATION_DATABASE_URL=... phigate migrate
#   docker run -p 8000:8000 -e DATABASE_URL=... -e PHIGATE_TLS_CERT_FILE=... phigate

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
# Optional extras: "[kms]" adds boto3 for AWS KMS; "" for none.
ARG PHIGATE_EXTRAS="[kms]"

FROM ${PYTHON_IMAGE} AS build
ARG PHIGATE_EXTRAS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/phigate
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY db ./db
COPY resolvers ./resolvers
COPY graph ./graph
RUN /opt/phigate/bin/pip install --upgrade pip \
 && /opt/phigate/bin/pip install ".${PHIGATE_EXTRAS}" \
 && find /opt/phigate -name '__pycache__' -prune -exec rm -rf {} +

# The analyst console's GraphiQL scripts and styles, pinned by version and sha512
# integrity, so the console needs no CDN at run time. Its own stage: running phigate here
# would leave bytecode in the builder's /opt/phigate. An internal npm mirror:
# --build-arg PHIGATE_NPM_REGISTRY=https://npm.example.org/...
FROM build AS console-assets
ARG PHIGATE_NPM_REGISTRY=https://registry.npmjs.org
RUN /opt/phigate/bin/phigate console fetch-assets --directory /opt/phigate/console-assets \
      --registry "${PHIGATE_NPM_REGISTRY}"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 phigate \
 && useradd --system --uid 10001 --gid phigate --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin phigate
COPY --from=build /opt/phigate /opt/phigate
COPY --from=console-assets /opt/phigate/console-assets /opt/phigate/console-assets
ENV PATH=/opt/phigate/bin:$PATH \
    PHIGATE_CONSOLE_ASSETS=/opt/phigate/console-assets \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PHIGATE_ENV=production \
    PHIGATE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# Liveness over loopback: HTTPS when the container terminates TLS itself, else HTTP. The
# probe trusts exactly the container's own certificate (as its own trust anchor, host
# name aside: it dials 127.0.0.1), never an unverified connection.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, ssl, sys, urllib.request as u\ncert = os.environ.get('PHIGATE_TLS_CERT_FILE')\nctx = None\nif cert:\n    ctx = ssl.create_default_context(cafile=cert)\n    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN\n    ctx.check_hostname = False\nsys.exit(u.urlopen(('https' if cert else 'http') + '://127.0.0.1:8000/health', timeout=2, context=ctx).status != 200)"]
ENTRYPOINT ["phigate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
