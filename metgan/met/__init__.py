"""The Met Collection API: async client, rate limiting, record parsing, ingest; a fake Met server."""
