# One image, either role:
#   docker run ... kleer-hubspot            -> `kleer-hubspot api` on 0.0.0.0:8000 (the default)
#   docker run ... kleer-hubspot worker     -> a worker
# Configuration only from the environment (README "Configuration"); secrets from your secret
# store, never baked in. Example with Temporal: deploy/docker-compose.yml.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY *.py ./
COPY actions actions
COPY activities activities
COPY hubspot_api hubspot_api
COPY kleer_api kleer_api
COPY workflows workflows
COPY simulators simulators
COPY local local
COPY ops ops
COPY storage storage
COPY oauth oauth
COPY web web
COPY portals portals
COPY pacing pacing
COPY sync sync
RUN pip install . && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin kleer

# Not root: the process needs no privilege (it listens on 8000 and calls out over HTTPS).
USER 10001
EXPOSE 8000
# The API's health check; a worker container overrides or disables it (deploy/docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["kleer-hubspot"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
