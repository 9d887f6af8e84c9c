# syntax=docker/dockerfile:1
# The survey-alerts image: one image for the worker, the notifier and the inbox (the command picks).
# Build stage: wheels of the locked dependencies (requirements.lock, exported from uv.lock with
# hashes: the demo's broker and the dev tools are not in it), in a layer of their own so a source
# change rebuilds only the project's wheel; run stage: only the installed wheels.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY stream stream
COPY agents agents
COPY schemas schemas
COPY alerts alerts
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin survey \
 && install -d -o survey -g survey /home/survey/data
# /home/survey/data: the worker's state and the inbox's SQLite read model; a named volume mounted
# there starts with this ownership, so the non-root user can write it
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/survey_alerts-*.whl && rm -rf /wheels
USER survey
WORKDIR /home/survey
ENV SURVEY_ALERTS_DATA_DIR=/home/survey/data \
    PYTHONUNBUFFERED=1
EXPOSE 6066 6067 6068
# the worker's readiness (tables recovered, partitions assigned, broker reachable); the notifier
# and the inbox override the port in docker-compose.yml
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/ready', timeout=4)"]
ENTRYPOINT ["survey-alerts"]
CMD ["worker"]
