"""Weights to Parquet: what a conversion is asked and did (`config`), the file layout (`format`),
writing (`write`), reading (`load`), the model read (`source_model`), validation (`validate`), and the
converter that stages, validates and publishes (`converter`).
"""
