"""Where a model's files come from (`resolve`: a tiny build, a Python package, a local folder or
the Hub) and the tiny random models built offline from a registry's `tiny` section (`tiny`).
"""
