"""Model format converters: `onnx` (PyTorch to a validated ONNX file, cached) and `parquet` (weights to
a validated Parquet file). Each imports torch and its runtime only when it converts.
"""
