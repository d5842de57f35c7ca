"""Model format converters (Parquet, ONNX). Each lives in its own module, imported only when used."""
