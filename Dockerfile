# SharingHub MLflow: one image, configured entirely from the environment (README, "Production").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DATA_DIR=/data BIND=0.0.0.0:8000

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sharinghub \
    && mkdir -p /app /data && chown sharinghub /data

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=root:root . .

USER sharinghub
# SQLite databases, local artifacts and the generated secret key, when those defaults are used.
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]

# Migrates both databases, prints the effective configuration, then runs gunicorn.
CMD ["python", "manage.py", "serve"]
