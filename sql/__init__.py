"""The database's migrations (NNNN_name.sql) and named queries (queries/), installed as metgan.sql so
a wheel carries them; metgan.db reads them with importlib.resources."""
