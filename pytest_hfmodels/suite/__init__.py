"""The built-in generated suite; its node ids are stored with every row, so its path stays put."""
