"""Analyses a person runs over the suite's own decisions (not tasks a DAG runs): `replay`, does retraining pay?"""
