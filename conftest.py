"""Root conftest: keeps the project's own test runs away from the network and telemetry."""

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("OPENVINO_TELEMETRY_DISABLE", "1")
