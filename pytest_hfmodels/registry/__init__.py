"""The model registries: frozen entries (`model`), YAML files loaded and validated with file:line
errors (`loader`), the user's selection and the table listing it (`select`), and the original tools'
custom set file (`custom_set`).
"""
