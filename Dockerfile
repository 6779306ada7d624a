# syntax=docker/dockerfile:1.7
# phigate: multi-stage, slim, non-root. Serves against DATABASE_URL (a managed
# PostgreSQL with sslmode=verify-full); the embedded database is not used in images.
#
#   docker build -t phigate .
#   docker run --rm -e PHIGATE_MIGRATION_DATABASE_URL=... phigate migrate
#   docker run -p 8000:8000 -e DATABASE_URL=... phigate

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/phigate
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY db ./db
COPY resolvers ./resolvers
COPY graph ./graph
RUN /opt/phigate/bin/pip install --upgrade pip \
 && /opt/phigate/bin/pip install . \
 && find /opt/phigate -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 phigate \
 && useradd --system --uid 10001 --gid phigate --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin phigate
COPY --from=build /opt/phigate /opt/phigate
ENV PATH=/opt/phigate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PHIGATE_ENV=production \
    PHIGATE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
ENTRYPOINT ["phigate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
