"""The DuckDB results database: schema as migrations (`schema`), storing a run in one transaction
(`store`), rows as an Arrow table and spill files (`spill`, `ingest`), merging (`merge`), the ONNX
conversion registry (`conversions`) and the environment a run was measured in (`environment`).
"""
