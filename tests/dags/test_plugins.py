"""The plugins load in Airflow and produce the links an operator needs."""

from __future__ import annotations


def test_airflow_loads_both_plugins_and_the_timetable():
    from airflow import plugins_manager

    plugins, _errors = plugins_manager._get_plugins()
    names = {p.name for p in plugins}
    assert {"trading_sessions", "mlflow_links"} <= names
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
