# The bookloop image: the worker, the batch CLI and the weekly retrain (docker-compose.yml).
# Only runtime dependencies: the package and what pyproject.toml lists, no dev/test extras.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY producers/ producers/
COPY consumers/ consumers/
COPY batch/ batch/
COPY monitoring/ monitoring/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# libgomp1: LightGBM's OpenMP runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home bookloop \
    && mkdir -p /data/models \
    && chown -R bookloop:bookloop /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY --chown=root:root deploy/weekly-retrain.sh deploy/weekly-retrain.sh
USER bookloop
# BOOKLOOP: the CLI that deploy/weekly-retrain.sh runs
ENV PYTHONUNBUFFERED=1 BOOKLOOP=bookloop BOOKLOOP_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 6066
CMD ["bookloop", "worker"]
