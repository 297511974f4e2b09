"""The fake Met server over real HTTP: collection shapes, filters, images, every fault knob, accounting."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
import requests
from PIL import Image

from tests.conftest import SHARED

pytest_plugins = ["tests.fakemet"]

SAMPLES = SHARED / "met-samples" / "objects"


def get(handle, path: str, **params) -> requests.Response:
    return requests.get(handle.url + path, params=params or None, timeout=10)


def sample_keys(name: str) -> list[str]:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"real Met sample {path} is absent")
    return list(json.loads(path.read_text(encoding="utf-8")))


def records_by_schema(handle) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {"current": [], "2020": [], "2019": []}
    for obj in handle.collection.objects.values():
        keys = obj.record.keys()
        schema = "current" if "GalleryNumber" in keys else ("2020" if "accessionYear" in keys else "2019")
        groups[schema].append(obj.record)
    return groups


def ok_ids(handle) -> list[int]:
    return [i for i, o in handle.collection.objects.items() if o.status == "ok"]


# Collection and API shapes


def test_same_seed_serves_same_bytes_and_another_seed_differs(fake_met):
    from metgan.testing.fakemet import run_in_thread

    with run_in_thread(objects=120, image_width=64) as twin, run_in_thread(objects=120, image_width=64, seed=7) as other:
        listing = get(fake_met, "/objects").json()
        assert listing == get(twin, "/objects").json()
        assert listing != get(other, "/objects").json()
        object_id = next(i for i in ok_ids(fake_met) if fake_met.collection.objects[i].images)
        record = get(fake_met, f"/objects/{object_id}").json()
        twin_record = get(twin, f"/objects/{object_id}").json()
        assert record["primaryImage"].replace(fake_met.root, "") == twin_record["primaryImage"].replace(twin.root, "")
        assert {k: v for k, v in record.items() if "Image" not in k} == \
               {k: v for k, v in twin_record.items() if "Image" not in k}
        image = requests.get(record["primaryImage"], timeout=10).content
        assert image == requests.get(twin_record["primaryImage"], timeout=10).content


def test_records_have_the_real_key_sets_in_api_order(fake_met):
    groups = records_by_schema(fake_met)
    assert all(groups.values()), {k: len(v) for k, v in groups.items()}
    real_current = sample_keys("object_436535.json")
    served = [get(fake_met, f"/objects/{r['objectID']}").json() for r in groups["current"][:5]]
    assert all(list(record) == real_current for record in served)
    assert all(list(r) == sample_keys("object_45734_2020_schema.json") for r in groups["2020"])
    assert all(set(r) == set(sample_keys("object_1000_2019_schema_CONVERTED.json")) for r in groups["2019"])
    # The 2019 schema carries tags as plain strings (when it has tags at all).
    assert any(r["tags"] and all(isinstance(t, str) for t in r["tags"]) for r in groups["2019"])


def test_records_carry_the_real_apis_nulls_empty_strings_and_types(fake_met):
    records = [o.record for o in fake_met.collection.objects.values()]
    for field in ("constituents", "tags", "measurements"):
        assert any(r.get(field) is None for r in records if field in r), field
        assert any(r.get(field) for r in records), field
    assert any(r["tags"] == [] for r in records)
    assert all(r["primaryImage"] == "" and r["additionalImages"] == [] for r in records if not r["isPublicDomain"])
    assert any(r["additionalImages"] for r in records)
    assert all(isinstance(r["objectBeginDate"], int) and isinstance(r["objectEndDate"], int) for r in records)
    assert all(None not in (r["title"], r["culture"], r["classification"], r["period"]) for r in records)
    assert any(r["classification"] == "" for r in records)
    assert any(r.get("GalleryNumber") for r in records)
    names = {r["objectName"] for r in records}
    assert {"Vase", "Plate", "Painting"} <= names
    assert any("ragment" in n for n in names)


def test_unknown_ids_loans_and_the_missing_id_answer_like_the_real_api(fake_met):
    loans = [i for i, o in fake_met.collection.objects.items() if o.status == "loan"]
    listed = get(fake_met, "/objects").json()["objectIDs"]
    assert loans and set(loans) <= set(listed)
    loan = get(fake_met, f"/objects/{loans[0]}")
    assert loan.status_code == 404 and loan.json() == {"message": "Not a valid object"}
    unknown = get(fake_met, "/objects/0")
    assert unknown.status_code == 404 and unknown.json() == {"message": "ObjectID not found"}
    assert unknown.headers["Content-Type"].startswith("application/json")
    assert get(fake_met, "/objects/").json() == {"message": "Not Found"}
    departments = get(fake_met, "/departments").json()["departments"]
    assert len(departments) == 19 and {d["departmentId"] for d in departments} >= {1, 13, 21}


def test_listing_filters_by_metadata_date_and_departments(fake_met):
    everything = get(fake_met, "/objects").json()
    assert everything["total"] == len(everything["objectIDs"]) == 120
    since = get(fake_met, "/objects", metadataDate="2024-01-01").json()
    assert 0 < since["total"] < 120
    for object_id in since["objectIDs"][:10]:
        record = get(fake_met, f"/objects/{object_id}")
        if record.status_code == 200:
            assert record.json()["metadataDate"][:10] >= "2024-01-01"
    expected = sorted(i for i, o in fake_met.collection.objects.items() if o.metadata_date >= "2024-01-01")
    assert since["objectIDs"] == expected
    chosen = get(fake_met, "/objects", departmentIds="6|13").json()["objectIDs"]
    assert chosen and all(fake_met.collection.objects[i].department_id in (6, 13) for i in chosen)
    assert len(chosen) == sum(o.department_id in (6, 13) for o in fake_met.collection.objects.values())
    both = get(fake_met, "/objects", departmentIds="13", metadataDate="2024-01-01").json()["objectIDs"]
    assert both and both == [i for i in expected if fake_met.collection.objects[i].department_id == 13]
    assert get(fake_met, "/objects", departmentIds="2").json() == {"total": 0, "objectIDs": None}
    assert get(fake_met, "/objects", metadataDate="not-a-date").status_code == 400


def test_search_matches_case_insensitively_and_answers_null_when_nothing_matches(fake_met):
    nothing = get(fake_met, "/search", q="zzz-no-such-thing", hasImages="true")
    assert nothing.json() == {"total": 0, "objectIDs": None}
    found = get(fake_met, "/search", q="VASE").json()
    assert found["total"] == len(found["objectIDs"]) > 0
    for object_id in found["objectIDs"]:
        record = fake_met.collection.objects[object_id].record
        tags = [t if isinstance(t, str) else t["term"] for t in record["tags"] or []]
        assert "vase" in " ".join([record["title"], record["objectName"], record["culture"], *tags]).lower()
    with_images = get(fake_met, "/search", q="vase", hasImages="true").json()["objectIDs"]
    assert set(with_images) < set(found["objectIDs"])
    assert all(fake_met.collection.objects[i].record["primaryImage"] for i in with_images)


# Images


def test_images_decode_and_vases_are_mostly_near_five_by_four_portrait(fake_met):
    aspects, contrasts = [], []
    for obj in fake_met.collection.objects.values():
        if obj.status != "ok" or not obj.is_vase or not obj.images or obj.images[0].missing:
            continue
        response = requests.get(obj.record["primaryImage"], timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(response.content))
        image.load()
        width, height = image.size
        aspects.append(height / width)
        # Off-white studio background in the corner, the vase (not the background) in the middle.
        rgb = image.convert("RGB")
        corner, centre = rgb.getpixel((1, 1)), rgb.getpixel((width // 2, height // 2))
        assert min(corner) > 180
        contrasts.append(max(abs(a - b) for a, b in zip(corner, centre, strict=True)))
    assert len(aspects) >= 30
    assert sum(c > 10 for c in contrasts) >= 0.8 * len(contrasts)      # white porcelain may blend in
    near = [a for a in aspects if 1.15 <= a <= 1.35]
    assert len(near) >= 0.65 * len(aspects)
    assert len(near) < len(aspects)          # some outliers


def test_web_large_rendition_is_smaller_and_other_kinds_have_other_shapes(fake_met):
    objects = [o for o in fake_met.collection.objects.values() if o.status == "ok" and o.images and not o.images[0].missing]
    vase = next(o for o in objects if o.is_vase)
    original = Image.open(io.BytesIO(requests.get(vase.record["primaryImage"], timeout=10).content))
    small = Image.open(io.BytesIO(requests.get(vase.record["primaryImageSmall"], timeout=10).content))
    assert small.size[0] < original.size[0] and small.size[1] < original.size[1]
    painting = next(o for o in objects if o.kind == "painting")
    image = Image.open(io.BytesIO(requests.get(painting.record["primaryImage"], timeout=10).content))
    assert image.size[0] > image.size[1]


def test_image_names_with_spaces_and_non_ascii_characters_need_percent_encoding(fake_met):
    odd = [o.images[0] for o in fake_met.collection.objects.values()
           if o.images and not o.images[0].missing and (" " in o.images[0].file_name or not o.images[0].file_name.isascii())]
    assert odd, "the collection should include awkward file names"
    ref = odd[0]
    url = fake_met.collection.image_url(ref)
    encoded = fake_met.root + quote(url[len(fake_met.root):])
    assert requests.get(encoded, timeout=10).status_code == 200
    twice = fake_met.root + quote(quote(url[len(fake_met.root):]))
    assert requests.get(twice, timeout=10).status_code == 404


def test_missing_images_answer_404_for_ever():
    from metgan.testing.fakemet import CollectionConfig, run_in_thread

    with run_in_thread(CollectionConfig(objects=40, image_width=48, missing_images=0.0, no_image=0.0,
                                        not_public_domain=0.0, missing_image_ids=frozenset(range(0, 2000)))) as met:
        obj = next(o for o in met.collection.objects.values() if o.status == "ok")
        for _ in range(3):
            assert requests.get(obj.record["primaryImage"], timeout=10).status_code == 404


def test_foreign_image_urls_name_another_host_that_only_an_allow_list_stops():
    from metgan.testing.fakemet import CollectionConfig, run_in_thread

    config = CollectionConfig(objects=20, image_width=32, no_image=0.0, not_public_domain=0.0, missing_images=0.0,
                              foreign_image_ids=frozenset(range(1000, 1011)))
    with run_in_thread(config) as met:
        foreign = [o for o in met.collection.objects.values() if o.object_id in config.foreign_image_ids]
        local = [o for o in met.collection.objects.values() if o.object_id not in config.foreign_image_ids]
        assert foreign and local
        assert all(urlsplit(o.record["primaryImage"]).hostname == "localhost" for o in foreign)
        assert all(urlsplit(o.record["primaryImage"]).hostname == met.image_host for o in local)
        assert requests.get(foreign[0].record["primaryImage"], timeout=10).status_code == 200


def test_oversized_and_huge_dimension_images_are_served_as_configured(fake_met):
    obj = next(o for o in fake_met.collection.objects.values() if o.status == "ok" and o.images and not o.images[0].missing)
    url = obj.record["primaryImage"]
    plain = requests.get(url, timeout=10).content
    fake_met.set_faults(inflate_bytes=200_000, inflate_image_ids={obj.object_id})
    inflated = requests.get(url, timeout=10).content
    assert len(inflated) >= len(plain) + 200_000
    assert Image.open(io.BytesIO(inflated)).size == Image.open(io.BytesIO(plain)).size
    fake_met.set_faults(huge_image_ids={obj.object_id}, huge_side=13000)
    with pytest.warns(Image.DecompressionBombWarning):
        assert Image.open(io.BytesIO(requests.get(url, timeout=10).content)).size == (13000, 13000)
    fake_met.set_faults(huge_side=30000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(requests.get(url, timeout=10).content))


# Faults


def test_5xx_then_success_once_the_path_has_had_its_faults(fake_met):
    fake_met.set_faults(error_5xx=1.0, max_per_path=2)
    object_id = ok_ids(fake_met)[0]
    statuses = [get(fake_met, f"/objects/{object_id}").status_code for _ in range(4)]
    assert all(s >= 500 for s in statuses[:2]) and statuses[2:] == [200, 200]
    assert fake_met.stats()["faults_injected"]["error_5xx"] == 2


def test_429_carries_retry_after(fake_met):
    fake_met.set_faults(rate_429=1.0, retry_after=3, max_per_path=1)
    first = get(fake_met, "/departments")
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    assert get(fake_met, "/departments").status_code == 200


def test_wrong_content_types_for_json_and_images(fake_met):
    fake_met.set_faults(wrong_content_type=1.0, max_per_path=1)
    listing = get(fake_met, "/objects")
    assert listing.status_code == 200 and listing.headers["Content-Type"].startswith("text/plain")
    assert get(fake_met, "/objects").headers["Content-Type"].startswith("application/json")
    obj = next(o for o in fake_met.collection.objects.values() if o.status == "ok" and o.images and not o.images[0].missing)
    image = requests.get(obj.record["primaryImage"], timeout=10)
    assert image.headers["Content-Type"].startswith("text/html")


def test_corrupt_and_truncated_jpegs_do_not_decode(fake_met):
    objs = [o for o in fake_met.collection.objects.values() if o.status == "ok" and o.images and not o.images[0].missing]
    plain = requests.get(objs[0].record["primaryImage"], timeout=10).content
    fake_met.reset()
    fake_met.set_faults(corrupt_image=1.0, max_per_path=1, scope="images")
    corrupt = requests.get(objs[0].record["primaryImage"], timeout=10)
    assert corrupt.status_code == 200 and len(corrupt.content) == len(plain) and corrupt.content != plain
    with pytest.raises(OSError):          # PIL.UnidentifiedImageError
        Image.open(io.BytesIO(corrupt.content)).load()
    assert requests.get(objs[0].record["primaryImage"], timeout=10).content == plain
    fake_met.set_faults(corrupt_image=0.0, truncate_image=1.0)
    truncated = requests.get(objs[1].record["primaryImage"], timeout=10)
    assert truncated.status_code == 200 and int(truncated.headers["Content-Length"]) == len(truncated.content)
    with pytest.raises(OSError):
        Image.open(io.BytesIO(truncated.content)).load()
    assert get(fake_met, "/departments").status_code == 200          # scope=images leaves the API alone


def test_resets_and_truncated_bodies_break_the_connection_then_recover(fake_met):
    object_id = ok_ids(fake_met)[0]

    async def fetch(path: str):
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(fake_met.url + path) as response:
                    return response.status, await response.read()
            except aiohttp.ClientPayloadError as exc:
                return "payload", exc
            except aiohttp.ClientConnectionError as exc:
                return "connection", exc

    # aiohttp retries an idempotent request once by itself after a reset: two resets reach the caller.
    fake_met.set_faults(reset=1.0, max_per_path=2)
    assert asyncio.run(fetch(f"/objects/{object_id}"))[0] == "connection"
    assert asyncio.run(fetch(f"/objects/{object_id}"))[0] == 200
    fake_met.set_faults(reset=0.0, truncate=1.0, max_per_path=1)
    assert asyncio.run(fetch("/departments"))[0] == "payload"
    status, body = asyncio.run(fetch("/departments"))
    assert status == 200 and json.loads(body)["departments"]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(fake_met, "/objects")
    log = fake_met.request_log()
    assert [e.fault for e in log] == ["reset", "reset", None, "truncate", None, "truncate"]
    assert log[0].status == -1


def test_slow_answers_and_latency(fake_met):
    fake_met.set_faults(slow=1.0, slow_seconds=3.0, max_per_path=1)
    with pytest.raises(requests.exceptions.Timeout):
        requests.get(fake_met.url + "/departments", timeout=0.5)
    fake_met.set_faults(slow=0.0, latency=0.3, jitter=0.1)
    started = time.monotonic()
    assert get(fake_met, "/departments").status_code == 200
    assert time.monotonic() - started >= 0.3          # a lower bound: sleeping is never shorter


def test_faults_are_deterministic_by_seed_and_request_sequence():
    from metgan.testing.fakemet import Faults, run_in_thread

    def sequence(seed: int) -> list:
        faults = Faults(seed=seed, error_5xx=0.3, rate_429=0.2, wrong_content_type=0.1, max_per_path=2)
        with run_in_thread(objects=30, image_width=32, faults=faults) as met:
            for object_id in list(met.collection.objects)[:15]:
                for _ in range(3):
                    get(met, f"/objects/{object_id}")
            return [(e.path, e.fault, e.status) for e in met.request_log()]

    first = sequence(1)
    assert first == sequence(1)
    assert first != sequence(2)
    assert any(fault for _, fault, _ in first)


def test_block_page_after_a_burst_then_cooldown(fake_met):
    fake_met.set_faults(block_threshold=5, block_window=60.0, block_cooldown=1.0)
    statuses = [get(fake_met, "/departments") for _ in range(8)]
    assert [r.status_code for r in statuses[:5]] == [200] * 5
    blocked = statuses[5:]
    assert all(r.status_code == 403 and r.headers["Content-Type"].startswith("text/html") for r in blocked)
    assert "Incapsula incident ID" in blocked[0].text and blocked[0].headers["X-CDN"] == "Imperva"
    images = [o for o in fake_met.collection.objects.values() if o.images and not o.images[0].missing]
    assert requests.get(images[0].record["primaryImage"], timeout=10).status_code == 200   # image host not blocked
    time.sleep(1.2)
    assert get(fake_met, "/departments").status_code == 200
    stats = fake_met.stats()
    assert stats["blocks"] == 1 and stats["faults_injected"]["block"] == 3


def test_block_page_can_answer_200_like_the_2019_cdn(fake_met):
    fake_met.set_faults(block_threshold=1, block_window=60.0, block_cooldown=30.0, block_status=200)
    get(fake_met, "/departments")
    page = get(fake_met, "/departments")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Incapsula" in page.text


# Accounting, admin, fixture, CLI


def test_request_log_counts_per_endpoint_and_sliding_window(fake_met):
    for object_id in ok_ids(fake_met)[:6]:
        get(fake_met, f"/objects/{object_id}")
    get(fake_met, "/objects")
    get(fake_met, "/search", q="vase")
    counts = fake_met.counts()
    assert counts == {"object": 6, "objects": 1, "search": 1}
    assert fake_met.requested_object_ids() == ok_ids(fake_met)[:6]
    assert fake_met.max_requests_in_any_window(3600.0) == 8
    assert fake_met.max_requests_in_any_window(3600.0, endpoint="object") == 6
    assert sum(fake_met.stats()["per_second"].values()) == 8


def test_sliding_window_counts_the_busiest_span():
    from metgan.testing.fakemet.server import LoggedRequest, RequestLog

    log = RequestLog()
    for t in (0.0, 0.5, 0.9, 1.0, 1.05, 1.8, 3.0):
        log.add(LoggedRequest(t, "GET", "/x", "", "object"))
    assert log.max_in_window(1.0) == 4          # 0.5, 0.9, 1.0, 1.05 (the span [t, t+1) )
    assert log.max_in_window(0.1) == 2
    assert log.per_second() == {0: 3, 1: 3, 3: 1}


def test_admin_routes_change_faults_and_report_stats_without_being_counted(fake_met):
    admin = fake_met.root + "/__fake__"
    changed = requests.post(admin + "/faults", json={"error_5xx": 1.0, "max_per_path": 1}, timeout=10)
    assert changed.status_code == 200 and changed.json()["error_5xx"] == 1.0
    assert get(fake_met, "/departments").status_code >= 500
    bad = requests.post(admin + "/faults", json={"errors": 1}, timeout=10)
    assert bad.status_code == 400 and "errors" in bad.json()["message"] and "error_5xx" in bad.json()["message"]
    stats = requests.get(admin + "/stats", timeout=10).json()
    assert stats["requests"] == 1 and stats["by_status"] and stats["faults_injected"] == {"error_5xx": 1}
    truth = requests.get(admin + "/objects", timeout=10).json()
    assert len(truth) == 120 and {"status", "is_vase", "images"} <= set(next(iter(truth.values())))
    assert requests.post(admin + "/reset", timeout=10).json() == {"reset": True}
    assert requests.get(admin + "/stats", timeout=10).json()["requests"] == 0


def test_fixture_points_the_settings_at_the_server(fake_met):
    from metgan.config import get_settings

    settings = get_settings()
    assert settings.met_api_url == fake_met.url == os.environ["METGAN_MET_API_URL"]
    assert settings.image_hosts == (fake_met.image_host,)
    assert fake_met.url.endswith("/public/collection/v1")


def test_cli_serve_prints_its_url_and_stops_on_sigterm(tmp_path):
    url_file = tmp_path / "url"
    process = subprocess.Popen(
        [sys.executable, "-m", "metgan", "fake-met", "serve", "--port", "0", "--objects", "20",
         "--image-width", "32", "--fault", "latency=0.001", "--url-file", str(url_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/public/collection/v1")
        assert url_file.read_text().strip() == url
        assert requests.get(url + "/objects", timeout=10).json()["total"] == 20
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_cli_rejects_an_unknown_fault_knob_in_one_line():
    result = subprocess.run([sys.executable, "-m", "metgan", "fake-met", "serve", "--fault", "errors=0.1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "errors" in result.stderr and "error_5xx" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("round_", [1, 2])
def test_session_server_starts_each_test_clean(fake_met_session, round_):
    from metgan.testing.fakemet import Faults

    assert fake_met_session.faults == Faults() and fake_met_session.stats()["requests"] == 0
    fake_met_session.set_faults(error_5xx=1.0)          # must not leak into the next test
    assert get(fake_met_session, "/departments").status_code >= 500


# Real scale and hostile bodies


@pytest.fixture(scope="module")
def real_scale():
    from metgan.testing.fakemet import run_in_thread

    with run_in_thread(scale="real", image_width=32) as handle:
        yield handle


def test_default_listing_is_byte_for_byte_what_json_dumps_writes(fake_met):
    ids = fake_met.collection.sorted_ids
    body = requests.get(fake_met.url + "/objects", timeout=10).content
    assert body == json.dumps({"total": len(ids), "objectIDs": ids}, ensure_ascii=False).encode()


def test_real_scale_lists_490000_ids_in_about_4_mb_and_serves_records_beyond_the_generated_ones(real_scale):
    response = requests.get(real_scale.url + "/objects", timeout=30)
    listing = response.json()
    ids = listing["objectIDs"]
    assert listing["total"] == len(ids) == 490_000 == len(set(ids))
    assert ids == sorted(ids) and 3_500_000 < len(response.content) < 4_500_000
    assert requests.get(real_scale.url + "/objects", timeout=30).content == response.content
    generated = set(real_scale.collection.objects)
    beyond = [i for i in ids[-3:] if i not in generated]
    assert len(beyond) == 3
    for object_id in beyond:
        answer = requests.get(f"{real_scale.url}/objects/{object_id}", timeout=10)
        assert answer.status_code == 404 or answer.json()["objectID"] == object_id
    assert any(requests.get(f"{real_scale.url}/objects/{i}", timeout=10).status_code == 200 for i in ids[-40:])
    listed = set(ids)
    gap = next(i for i in range(ids[-1000], ids[-1]) if i not in listed)
    for unlisted in (gap, ids[-1] + 1):
        assert requests.get(f"{real_scale.url}/objects/{unlisted}", timeout=10).status_code == 404
    filtered = requests.get(real_scale.url + "/objects", params={"departmentIds": "6"}, timeout=10).json()
    assert set(filtered["objectIDs"]) <= generated, "filtered listings cover the generated objects"


def test_real_scale_records_reach_1_mb(real_scale):
    huge = [i for i, kind in real_scale.collection.special.items() if kind == "huge"]
    assert len(huge) == 2
    for object_id in huge:
        body = requests.get(f"{real_scale.url}/objects/{object_id}", timeout=10).content
        assert 900_000 < len(body) <= 1_000_000
        record = json.loads(body)
        assert record["objectID"] == object_id and len(record["additionalImages"]) >= 2000


def test_hostile_bodies_carry_what_python_json_accepts_and_postgresql_refuses(real_scale):
    by_kind = {kind: i for i, kind in real_scale.collection.special.items()}

    def body(kind: str) -> bytes:
        answer = requests.get(f"{real_scale.url}/objects/{by_kind[kind]}", timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
        return answer.content

    with pytest.raises(RecursionError):
        json.loads(body("deep"))
    assert len(json.dumps(json.loads(body("nested"))["measurements"])) > 200
    assert b"NaN" in body("nan") and b"Infinity" in body("infinity") and b"1e400" in body("overflow")
    assert json.loads(body("overflow"))["measurements"][0]["elementMeasurements"]["Height"] == float("inf")
    assert "\ud800" in json.loads(body("surrogate"))["title"]
    assert "\x00" in json.loads(body("nul"))["title"]
    assert json.loads(body("escaped_nul"))["title"].startswith("C:\\u0000\\")
    port_url = json.loads(body("bad_port_url"))["primaryImage"]
    assert urlsplit(port_url).hostname == real_scale.image_host
    with pytest.raises(ValueError):
        assert urlsplit(port_url).port is None  # never reached: .port raises
    with pytest.raises(ValueError):
        urlsplit(json.loads(body("bad_bracket_url"))["primaryImage"])


def test_real_scale_images_redirect_to_the_same_host_a_foreign_host_and_a_foreign_port(real_scale):
    collection = real_scale.collection
    targets = {}
    for object_id, kind in collection.special.items():
        if kind.startswith("redirect"):
            url = collection.objects[object_id].record["primaryImageSmall"]
            answer = requests.get(url, allow_redirects=False, timeout=10)
            assert answer.status_code == 302
            targets.setdefault(kind, urlsplit(answer.headers["Location"]))
    assert (targets["redirect_same_host"].hostname, targets["redirect_same_host"].port) == (
        real_scale.image_host, real_scale.port)
    assert (targets["redirect_foreign_host"].hostname, targets["redirect_foreign_host"].port) == (
        "localhost", real_scale.port)
    assert (targets["redirect_foreign_port"].hostname, targets["redirect_foreign_port"].port) == (
        real_scale.image_host, 9)
    same = requests.get(targets["redirect_same_host"].geturl(), timeout=10)
    assert same.status_code == 200 and Image.open(io.BytesIO(same.content)).format == "JPEG"
    plain = next(o for o in collection.objects.values() if o.status == "ok" and o.images
                 and not o.images[0].missing and o.object_id not in collection.special)
    assert requests.get(plain.record["primaryImage"], allow_redirects=False, timeout=10).status_code == 200


def test_cli_serve_at_real_scale_and_a_bad_knob_in_one_line(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "metgan", "fake-met", "serve", "--port", "0", "--scale", "real", "--image-width", "32"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert requests.get(url + "/objects", timeout=30).json()["total"] == 490_000
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    result = subprocess.run([sys.executable, "-m", "metgan", "fake-met", "serve", "--scale", "real", "--objects", "3"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: 18 special objects")
