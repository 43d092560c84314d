FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies exactly as locked (versions and hashes), in their own layer; then the project
# itself, without dependencies. The migrations ship inside the package (forecourt/db/migrations).
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY forecourt ./forecourt
RUN pip install --no-deps . && rm -rf build

# Without DATABASE_URL, serve runs an embedded PostgreSQL in FORECOURT_DATA_DIR: a directory
# the unprivileged user owns (mount a volume there to keep it).
RUN useradd --system --home /app forecourt && install -d -o forecourt -g forecourt /var/lib/forecourt
USER forecourt

ENV FORECOURT_ENV=production FORECOURT_HOST=0.0.0.0 FORECOURT_PORT=8000 FORECOURT_DATA_DIR=/var/lib/forecourt
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["forecourt", "serve"]
