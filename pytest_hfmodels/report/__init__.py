"""Reports over the results database: the report's values (`model`), read from the database
(`queries`, with `compare` for what changed, `history` for the run compared with and the trends,
`table` for the performance rows), rendered as Markdown and one HTML page (`markdown`, `html` with
its `page_script`) with SVG charts (`plots` over `svg`), all called by `write`; and the original
tools' per-run JSON (`tools_json`).
"""
