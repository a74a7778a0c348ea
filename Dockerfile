# One image for every Airflow service and the MLflow server: Python 3.11 plus requirements.lock, installed with uv.
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/mlops/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/mlops/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PYTHONPATH=/opt/mlops/plugins \
    MLOPS_HOME=/opt/mlops/state

RUN pip install --no-cache-dir uv==0.13.9 \
 && useradd --create-home --uid 50000 --gid 0 airflow
WORKDIR /opt/mlops
COPY requirements.lock pyproject.toml README.md ./
COPY include ./include
RUN uv pip install --system --no-cache -r requirements.lock \
 && uv pip install --system --no-cache --no-deps -e .
COPY config ./config
COPY great_expectations ./great_expectations
COPY plugins ./plugins
COPY dags ./dags
RUN mkdir -p /opt/airflow /opt/mlops/state && chown -R 50000:0 /opt/airflow /opt/mlops
USER 50000
