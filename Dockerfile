# syntax=docker/dockerfile:1
# The survey-alerts image: one image for the worker, the notifier and the inbox (the command picks).
# Build stage: a wheel of the project and its dependencies; run stage: only the installed wheels.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream stream
COPY agents agents
COPY schemas schemas
COPY alerts alerts
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin survey \
 && install -d -o survey -g survey /home/survey/data
# /home/survey/data: the worker's state and the inbox's SQLite read model; a named volume mounted
# there starts with this ownership, so the non-root user can write it
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
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
