# Image of this repository for docker-compose.yaml: the provider (with Airflow), the AEP emulator
# and the sample-event producer. Versions are the ones pinned in constraints.txt.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags

# The cluster profile of docker-compose.yaml builds with EXTRAS="[cluster]" (Celery provider, PostgreSQL drivers).
ARG EXTRAS=""

WORKDIR /opt/aep-provider
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY aep_provider ./aep_provider
COPY scripts ./scripts
RUN pip install --no-cache-dir "uv==0.13.9" \
 && uv pip install --system --no-cache --constraint constraints.txt ".${EXTRAS}" \
 && mkdir -p /opt/airflow/dags

EXPOSE 8080 8765
CMD ["airflow", "standalone"]
