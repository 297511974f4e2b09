"""An S3-compatible server for tests and benchmarks: moto's server mode, a real HTTP S3 endpoint.

moto is a development dependency (``pip install metgan[dev]``); nothing in the product imports it.
:func:`s3_server` starts one on a free loopback port, creates the bucket and yields the settings a
metgan process needs to use it (the environment variables and the fsspec options).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
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
def s3_server(bucket: str = "metgan", *, own_process: bool = False,
              check_credentials: bool = False) -> Iterator[S3Server]:
    """A running moto S3 server on 127.0.0.1 with ``bucket`` created; stopped on exit.

    By default the server runs in threads of this process (cheap to start, enough for tests).
    ``own_process`` runs it as a separate process instead, as a real object store is: a
    benchmark must not make its S3 requests share this process's interpreter lock with the
    server that answers them.

    ``check_credentials`` (implies ``own_process``) makes the server refuse every request whose
    access key it does not know, as a real store does; moto knows none, so every request is
    refused and no bucket is created: for tests of what a refused client prints."""
    own_process = own_process or check_credentials
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = _free_port()
    found = S3Server(endpoint_url=f"http://127.0.0.1:{port}", bucket=bucket)
    if own_process:
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"} if check_credentials else None
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        stop = server.terminate
        _wait_for_port(port, server)
    else:
        from moto.server import ThreadedMotoServer

        threaded = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        threaded.start()
        stop = threaded.stop
    try:
        if check_credentials:
            yield found
            return
        import boto3

        boto3.client("s3", endpoint_url=found.endpoint_url, aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY, region_name=REGION).create_bucket(Bucket=bucket)
        yield found
    finally:
        stop()


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the moto server exited with status {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"the moto server did not listen on port {port} within {timeout:.0f} s")
