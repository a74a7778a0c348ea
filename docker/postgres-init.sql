-- One server, four databases: Airflow's metadata, MLflow's backend store, the suite's SQL store
-- (data versions and head, forecasts, drift checks, alias moves, alerts) and MLflow's users.
CREATE DATABASE mlflow;
CREATE DATABASE mlops_state;
CREATE DATABASE mlflow_auth;  -- MLflow's basic-auth users and permissions
