"""convert/parquet"""
