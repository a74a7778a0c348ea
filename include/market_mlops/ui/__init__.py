"""Pages people read inside the Airflow UI: the Models page and a page per model (`app`, mounted by the
`models_page` plugin), built from fleet-sized reads (`fleet`), rendered as self-contained HTML (`pages`, `charts`)."""
