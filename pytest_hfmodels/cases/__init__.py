"""What runs: frozen `Settings` from the options (`settings`, with the measurement defaults), the
detected hardware (`hardware`, probed in a child process by `hardware_probe`), and the expansion of
entries x modes x devices x input sizes into sorted `Case`s with stable ids (`expand`).
"""
