"""The batch plan: inbound stages as set operations over tables.

Each stage reads and writes named tables (``raw_lines`` → ``cls`` → ``items`` →
``line_result`` → profile changes), so an engine only has to run SQL. DuckDB runs it
today; the SQL avoids DuckDB-only features where a portable form exists.
"""
