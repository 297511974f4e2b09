"""Secrets never reach a message, and metadata addresses are never fetched (issue #25).

Every URL a message shows is redacted (no user name, password, query or fragment), whatever it
came from; link-local addresses and cloud metadata names are refused for the Met API, images,
CSV sources and object-store endpoints whatever the settings say; loopback stays allowed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metgan.config import Settings
from metgan.db.engine import connect_error, get_engine_for_url, safe_url
from metgan.errors import ConfigError, DatabaseError, ImageError, MetApiError
from metgan.met.client import ForbiddenAddress, MetClient, PublicResolver
from metgan.urlpolicy import UrlPolicy, check_resolved, forbidden_host, redact_url, redact_urls_in

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql://admin:{SECRET}@db.example:5432/met?sslmode=require&password={SECRET}",
     "postgresql://db.example:5432/met"),
    (f"https://user:{SECRET}@host.example/path?token={SECRET}#frag", "https://host.example/path"),
    (f"postgresql://u:{SECRET}/x@host/db", "postgresql://host/db"),       # a '/' in the password
    (f"postgresql://u:p@{SECRET}@host/db", "postgresql://host/db"),       # an '@' in the password
    (f"http://[broken:{SECRET}@x/?a={SECRET}", "http://x/"),
    (f"db.example/met?password={SECRET}", "db.example/met"),
    ("https://collectionapi.metmuseum.org/public/collection/v1", "https://collectionapi.metmuseum.org/public/collection/v1"),
])
def test_redact_url_drops_user_info_and_query(url, shown):
    assert redact_url(url) == shown
    if "://" in url:
        assert SECRET not in redact_urls_in(f'failed: "{url}" (and {url})')


@pytest.mark.parametrize(("name", "value"), [
    ("METGAN_MET_API_URL", f"http://user:{SECRET}@api.example:99999/v1?key={SECRET}"),
    ("METGAN_MET_API_URL", f"ftp://user:{SECRET}@api.example/v1"),
    ("METGAN_MET_API_URL", f"http://user:{SECRET}@api.example/v1"),
    ("METGAN_MET_API_URL", f"https://api.example/v1?key={SECRET}&x=[{SECRET}"),
    ("METGAN_MET_API_URL", f"http://user:{SECRET}@[bad/v1"),
    ("METGAN_DATABASE_URL", f"mysql://root:{SECRET}@localhost/met"),
    ("METGAN_DATABASE_URL", f"postgresql://root:{SECRET}@localhost:notaport/met"),
    ("METGAN_DATABASE_URL", f"postgresql://root:{SECRET}@[::1/met"),
    ("METGAN_DATABASE_URL", f"postgresql://root:{SECRET}@localhost:99999/met"),
    ("METGAN_DATA_DIR", f"s3://key:{SECRET}@bucket/prefix"),
    ("METGAN_DATA_DIR", f"s3:///prefix?secret={SECRET}"),
])
def test_a_refused_url_setting_is_one_line_without_its_secrets(name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert name in message and SECRET not in message and "\n" not in message


@pytest.mark.parametrize("value", [
    f"postgresql://root:{SECRET}@localhost:notaport/met",
    f"postgresql://root:{SECRET}@[::1/met",
    f"postgresql://root:{SECRET}@localhost:99999/met",
])
def test_the_cli_shows_a_malformed_database_url_in_one_line_without_the_password(value, tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("METGAN_")},
           "METGAN_DATABASE_URL": value, "METGAN_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "metgan", "db", "status"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    assert SECRET not in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_the_engine_refuses_a_malformed_url_and_messages_drop_the_query():
    with pytest.raises(ConfigError) as caught:
        get_engine_for_url(f"postgresql://u:{SECRET}@h:port/db")
    assert SECRET not in str(caught.value)
    url = f"postgresql://u:{SECRET}@127.0.0.1:1/db?password={SECRET}"
    assert SECRET not in safe_url(url)
    error = connect_error(url, OSError(f'could not connect to "postgresql://u:{SECRET}@h/db?password={SECRET}"'))
    assert isinstance(error, DatabaseError) and SECRET not in str(error)


# --- link-local and metadata addresses ---------------------------------------------------------

FORBIDDEN = ["169.254.169.254", "169.254.170.2", "[fe80::1]", "metadata.google.internal", "metadata",
             "instance-data", "2852039166", "0xa9fea9fe", "169.254.43518", "[::ffff:169.254.169.254]",
             "[fd00:ec2::254]", "100.100.100.200", "METADATA.GOOGLE.INTERNAL"]


@pytest.mark.parametrize("host", FORBIDDEN)
def test_a_metadata_host_is_refused_even_when_a_policy_lists_it(host):
    listed = host.strip("[]").lower()
    for policy in (UrlPolicy.for_images((listed,), ImageError), UrlPolicy.for_csv((listed,)),
                   UrlPolicy((listed,), "METGAN_IMAGE_HOSTS", ImageError)):
        with pytest.raises(policy.error, match="link-local|metadata"):
            policy.check(f"https://{host}/latest/meta-data/")
    with pytest.raises(ConfigError, match="METGAN_IMAGE_HOSTS entry .* (link-local|metadata)"):
        Settings.from_env({"METGAN_IMAGE_HOSTS": f"images.metmuseum.org,{host}"})


@pytest.mark.parametrize("host", ["169.254.169.254", "metadata.google.internal", "[fe80::a9fe:a9fe]", "2852039166"])
def test_the_met_api_url_and_data_folder_refuse_a_metadata_host(host):
    for name, value in (("METGAN_MET_API_URL", f"http://{host}/public/collection/v1"),
                        ("METGAN_DATA_DIR", f"http://{host}/data"),
                        ("METGAN_STORAGE_OPTIONS", f'{{"endpoint_url": "http://{host}:9000"}}'),
                        ("METGAN_STORAGE_OPTIONS", f'{{"client_kwargs": {{"endpoint_url": "http://{host}"}}}}')):
        with pytest.raises(ConfigError, match=f"{name}.*(link-local|metadata)"):
            Settings.from_env({name: value})
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL"):
        Settings.from_env({"METGAN_DATA_DIR": "s3://bucket/prefix", "AWS_ENDPOINT_URL": f"http://{host}",
                           "METGAN_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x"})


def test_loopback_and_buckets_named_like_metadata_stay_allowed():
    assert UrlPolicy.for_images(("127.0.0.1",), ImageError).check("http://127.0.0.1:8765/x.jpg")
    assert Settings.from_env({"METGAN_MET_API_URL": "http://127.0.0.1:9000/v1"}).met_api_url
    located = Settings.from_env({"METGAN_DATA_DIR": "s3://metadata/prefix",
                                 "METGAN_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x"})
    assert located.data_location == "s3://metadata/prefix"


def test_the_client_never_connects_to_a_metadata_api_url():
    async def ask():
        async with MetClient("http://169.254.169.254/public/collection/v1", rate=100, shared_rate=False,
                             max_attempts=1) as client:
            await client.get_json("objects")
    with pytest.raises(MetApiError, match="link-local"):
        asyncio.run(asyncio.wait_for(ask(), 10))


def test_a_name_that_resolves_to_a_metadata_address_is_refused():
    # getaddrinfo resolves the decimal spelling itself: the resolver sees 169.254.169.254
    async def resolve(host):
        return await PublicResolver().resolve(host, 80)
    with pytest.raises(ForbiddenAddress, match="169.254.169.254"):
        asyncio.run(resolve("2852039166"))
    assert asyncio.run(resolve("localhost"))
    with pytest.raises(ConfigError, match="resolves to 169.254.169.254"):
        check_resolved("https://2852039166/MetObjects.csv", ConfigError)
    check_resolved("http://127.0.0.1:1/MetObjects.csv", ConfigError)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FORBIDDEN + ["127.0.0.1", "images.metmuseum.org", "localhost", "[::1]"]),
       st.sampled_from(["http", "https"]), st.sampled_from(["", ":80", ":443", ":8080"]), st.text(max_size=20))
def test_no_allow_list_lets_a_metadata_url_through(host, scheme, port, path):
    entries = tuple({host.strip("[]").lower(), "127.0.0.1", "images.metmuseum.org", "localhost", "::1"})
    policy = UrlPolicy(entries, "METGAN_IMAGE_HOSTS", ImageError)
    url = f"{scheme}://{host}{port}/{path}"
    try:
        checked = policy.check(url)
    except ImageError:
        return
    assert forbidden_host(host) is None, f"{url} passed as {checked}"
