"""Airflow plugin: the "Models" page inside the Airflow UI.

A FastAPI app (`market_mlops.ui.app`) mounted by the api-server under `/mlops-models`, and a navigation entry that
shows it in the UI (an embedded view at `/plugin/models`): one row per model with its champion, challenger, drift band
and trend, and a page per model with its accuracy against the bands, the champion timeline, feature drift, recent
forecasts and the champion's holdout. Only people logged in to Airflow see it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from market_mlops.ui.app import create_app

URL_PREFIX = "/mlops-models"


class ModelsPagePlugin(AirflowPlugin):
    name = "models_page"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Models"}]
    external_views = [{"name": "Models", "href": f"{URL_PREFIX.lstrip('/')}/", "url_route": "models",
                       "destination": "nav", "icon": None}]
