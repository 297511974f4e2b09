"""The Met Collection API and its image CDN: async client, rate limiting, record parsing, image
download and the ingest steps (sequenced by :mod:`metgan.pipeline`). The fake Met server is test
scaffolding and lives in :mod:`metgan.testing.fakemet`."""
