"""Reports over the results database: the report's values (`model`), read from the database
(`queries`), rendered as Markdown, HTML and PNG plots (`markdown`, `html`, `plots`, all called by
`write`), runs compared (`compare`), and the original tools' per-run JSON (`tools_json`).
"""
