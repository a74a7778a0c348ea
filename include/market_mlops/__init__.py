"""market_mlops: the task logic of the batch MLOps DAG suite (ingestion, training, registry, drift, alerts).

Importing this package is cheap: heavy libraries are imported by the modules that use them.
"""

__version__ = "0.1.0"
