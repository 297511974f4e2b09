"""Property tests of the URL policy: any string in, either a normalised allowed URL or a refusal.

The oracle below restates the rule of :mod:`metgan.urlpolicy` independently (scheme, no user
name, a listed host, the port the entry allows); hypothesis feeds it arbitrary text and URLs
built from hostile parts (foreign and look-alike hosts, user names, odd and out-of-range ports,
brackets, control characters, non-ASCII).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metgan.errors import ConfigError, ImageError
from metgan.urlpolicy import UrlPolicy, encode_url

ENTRIES = ("images.metmuseum.org", "127.0.0.1", "cdn.example:8443", "[::1]:9000")
IMAGES = UrlPolicy.for_images(ENTRIES, ImageError)
CSV = UrlPolicy.for_csv(("github.com", "127.0.0.1"))
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTS = st.sampled_from([
    "images.metmuseum.org", "IMAGES.METMUSEUM.ORG", "images.metmuseum.org.evil.example", "evil.example",
    "images.metmuseum.org.", "127.0.0.1", "127.0.0.2", "localhost", "cdn.example", "[::1]", "::1",
    "169.254.169.254", "images.metmuseum.org%00", "ımages.metmuseum.org", "xn--mages-ya.metmuseum.org",
    "[x", "", "github.com", "0x7f000001", "[::ffff:127.0.0.1]",
]) | st.text(max_size=20)
PORTS = st.one_of(st.none(), st.integers(min_value=-5, max_value=70000).map(str),
                  st.sampled_from(["", "x", "80 ", "0443", "8443", "9000", "443", "80"]))
URLS = st.builds(
    lambda scheme, user, host, port, path, query: (
        f"{scheme}://{user}{host}{'' if port is None else ':' + port}/{path}{'?' + query if query else ''}"),
    st.sampled_from(["http", "https", "HTTP", "ftp", "file", "javascript", ""]),
    st.sampled_from(["", "user@", "user:pw@", "images.metmuseum.org@", "@"]),
    HOSTS, PORTS, st.text(max_size=30), st.text(max_size=15),
)


def allowed_by_oracle(url: str, policy_entries: dict[str, int | None], schemes: set[str]) -> bool:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname
    if parts.scheme not in schemes or "@" in parts.netloc or host not in policy_entries:
        return False
    listed = policy_entries[host]
    return port == listed if listed is not None else port in (80, 443) or host in ("127.0.0.1", "::1")


IMAGE_ORACLE = {"images.metmuseum.org": None, "127.0.0.1": None, "cdn.example": 8443, "::1": 9000}


def check(policy: UrlPolicy, url: str) -> str | None:
    try:
        return policy.check(url)
    except (ImageError, ConfigError):
        return None


@FAST
@given(st.one_of(st.text(max_size=80), URLS))
@example("https://IMAGES.metmuseum.org/CRDImages/a b–c.jpg")
@example("http://127.0.0.1:8765/x")
@example("https://cdn.example:8443/x?q=1 2")
@example("http://[::1]:9000/x")
@example("http://h:99999/x")
@example("http://[x/")
@example("https://images.metmuseum.org:99999/a.jpg")
@example("https://user@images.metmuseum.org/a.jpg")
@example("https://images.metmuseum.org\\@evil.example/a.jpg")
@example("https://images.metmuseum.org:443@evil.example/")
def test_any_string_is_a_normalised_allowed_url_or_a_refusal(url):
    result = check(IMAGES, url)  # any other exception fails the test
    if result is None:
        assert not url.startswith(("http://127.0.0.1:8765/", "https://cdn.example:8443/")), url
        return
    assert allowed_by_oracle(result, IMAGE_ORACLE, {"http", "https"}), result
    assert result.isascii() and result.isprintable() and " " not in result
    assert check(IMAGES, result) == result  # normalising twice changes nothing
    assert encode_url(result) == result


@FAST
@given(URLS)
def test_the_csv_policy_wants_https_except_on_loopback(url):
    result = check(CSV, url)
    if result is None:
        return
    parts = urlsplit(result)
    assert parts.hostname in ("github.com", "127.0.0.1")
    assert parts.scheme == "https" or parts.hostname == "127.0.0.1"
    assert parts.port in (None, 443) or parts.hostname == "127.0.0.1"


@FAST
@given(st.text(max_size=80), st.one_of(st.text(max_size=40), URLS))
def test_a_redirect_is_checked_like_a_first_url(location_base, location):
    try:
        result = IMAGES.follow("https://images.metmuseum.org/" + location_base, location, 1)
    except ImageError:
        return
    assert allowed_by_oracle(result, IMAGE_ORACLE, {"http", "https"}), result


@FAST
@given(st.one_of(st.text(max_size=80), URLS))
def test_encode_url_is_idempotent(url):
    try:
        once = encode_url(url)
    except ValueError:  # not a URL at all: a policy refuses it before anything is encoded
        return
    assert encode_url(once) == once
