FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY forecourt ./forecourt
RUN pip install .

RUN useradd --system --home /app forecourt
USER forecourt

ENV FORECOURT_ENV=production FORECOURT_HOST=0.0.0.0 FORECOURT_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["forecourt", "serve"]
