-- One server, three databases: Airflow's metadata, MLflow's backend store and the suite's SQL store
-- (data versions and head, forecasts, drift checks, alias moves, alerts).
CREATE DATABASE mlflow;
CREATE DATABASE mlops_state;
