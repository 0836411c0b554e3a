# The serving image: the wheel that scripts/build_wheel.sh builds (tests/test_packaging.py installs that same
# wheel into a fresh venv and runs setup and the demo), with no PyTorch and no Node in the final stage.
#   docker build -t stickerpick .            then see compose.yaml (bot + PostgreSQL)

# --- build: the npm emoji artwork and the wheel (default model + default pack as package data) -----------
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY vendor/package.json vendor/package-lock.json vendor/
RUN npm ci --prefix vendor --no-audit --no-fund --loglevel=error
COPY . .
# What the build script itself imports (it draws the pack with training/data/emoji_art.py: numpy, Pillow).
RUN pip install --no-cache-dir "setuptools>=77" wheel "numpy>=1.26,<3" pillow==13.0.0 \
 && PYTHON=python bash scripts/build_wheel.sh /dist

# --- serve: the wheel and its dependencies only ------------------------------------------------------------
FROM python:3.11-slim
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/stickerpick-*.whl && rm /tmp/*.whl \
 && useradd --system --home-dir /data --create-home stickerpick
USER stickerpick
ENV STICKERPICK_HOME=/data \
    STICKERPICK_METRICS_PORT=9464 \
    STICKERPICK_METRICS_LISTEN=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=8)"
ENTRYPOINT ["stickerpick"]
CMD ["telegram"]
