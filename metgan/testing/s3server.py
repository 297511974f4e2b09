"""An S3-compatible server for tests and benchmarks: moto's server mode, a real HTTP S3 endpoint.

moto is a development dependency (``pip install metgan[dev]``); nothing in the product imports it.
:func:`s3_server` starts one on a free loopback port, creates the bucket and yields the settings a
metgan process needs to use it (the environment variables and the fsspec options).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass

ACCESS_KEY = "metgan-test"
SECRET_KEY = "metgan-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str

    @property
    def options(self) -> dict:
        """fsspec/s3fs options that reach this server."""
        return {"endpoint_url": self.endpoint_url, "key": ACCESS_KEY, "secret": SECRET_KEY,
                "client_kwargs": {"region_name": REGION}}

    def env(self, data_prefix: str = "data", results_prefix: str = "results") -> dict[str, str]:
        """The environment of a metgan process whose files live on this server."""
        return {"METGAN_DATA_DIR": f"s3://{self.bucket}/{data_prefix}",
                "METGAN_RESULTS_DIR": f"s3://{self.bucket}/{results_prefix}",
                "METGAN_STORAGE_OPTIONS": json.dumps(self.options)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def s3_server(bucket: str = "metgan") -> Iterator[S3Server]:
    """A running moto S3 server on 127.0.0.1 with ``bucket`` created; stopped on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        found = S3Server(endpoint_url=f"http://127.0.0.1:{port}", bucket=bucket)
        import boto3

        boto3.client("s3", endpoint_url=found.endpoint_url, aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY, region_name=REGION).create_bucket(Bucket=bucket)
        yield found
    finally:
        server.stop()
