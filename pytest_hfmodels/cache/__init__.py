"""The on-disk cache of tiny models and conversions: content keys, built once under a file lock
(`store`), the record each entry keeps of itself (`manifest`), and listing, verifying and cleaning it
(`admin`).
"""
