"""The plugins load in Airflow and produce the links an operator needs."""

from __future__ import annotations


def test_airflow_loads_the_plugins_and_the_timetable():
    from airflow import plugins_manager

    plugins, _errors = plugins_manager._get_plugins()
    names = {p.name for p in plugins}
    assert {"trading_sessions", "mlflow_links", "models_page"} <= names
    timetables = plugins_manager.get_timetables_plugins()
    assert any(name.endswith("TradingSessionTimetable") for name in timetables)


def test_menu_link_points_at_the_mlflow_ui(monkeypatch):
    from mlflow_links import MLflowLinksPlugin

    view = MLflowLinksPlugin.external_views[0]
    assert view["name"] == "MLflow" and view["destination"] == "nav" and view["href"].startswith("http")


def test_task_links_from_suite_results():
    from mlflow_links import MLflowModelLink, MLflowRunLink, mlflow_urls

    retrain = {"model": "SPY-d1-direction", "version": "4", "run_id": "abc123"}
    assert mlflow_urls(retrain, "http://mlflow:5000") == {
        "run": "http://mlflow:5000/#/runs/abc123",
        "model": "http://mlflow:5000/#/models/SPY-d1-direction/versions/4",
    }
    drift = {"model": "SPY-d1-direction", "version": "4", "mlflow_run_id": "d1"}
    assert mlflow_urls(drift, "http://m")["run"] == "http://m/#/runs/d1"
    rollback = {"model": "SPY-d1-direction", "from": "4", "to": "3"}
    assert mlflow_urls(rollback, "http://m") == {"model": "http://m/#/models/SPY-d1-direction/versions/3"}
    assert mlflow_urls(["not", "a", "summary"]) == {} and mlflow_urls(None) == {}
    assert MLflowRunLink().name == "MLflow run" and MLflowModelLink().kind == "model"


def test_models_page_is_a_nav_entry_and_refuses_anyone_not_logged_in(monkeypatch):
    from airflow.api_fastapi.app import init_auth_manager
    from fastapi.testclient import TestClient
    from models_page import URL_PREFIX, ModelsPagePlugin

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "a-test-secret-of-some-length-0123456789")
    init_auth_manager()  # what the api-server does before mounting plugin apps

    view = ModelsPagePlugin.external_views[0]
    assert view["destination"] == "nav" and view["url_route"] == "models"
    assert view["href"] == URL_PREFIX.lstrip("/") + "/"  # relative: embedded from the api-server that serves it
    app = ModelsPagePlugin.fastapi_apps[0]["app"]
    client = TestClient(app)
    assert client.get("/").status_code == 401
    assert client.get("/model/SPY-d1-direction").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 403)
