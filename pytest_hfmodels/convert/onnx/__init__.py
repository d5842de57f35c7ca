"""PyTorch to ONNX: export specs per model type (`specs`), the PyTorch reference (`reference`, with
`wrappers` for models whose forward cannot be traced as is), one export (`export`), output agreement
(`compare`), one validated conversion (`build`), the keyed cache entry (`cached`), a model named by a
folder or a Hub id (`from_hub`), and the original tools' verifier (`verify`).
"""
