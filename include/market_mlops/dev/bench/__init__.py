"""`make bench`: measured figures next to their targets (`run.py`), and the pipelines they are compared with."""
