"""What a hostile or careless client sends: odd methods, random paths, odd parameters. None of
it may act, spend, grow the service's state or answer 5xx."""

from __future__ import annotations

import random
import string

import requests
from prometheus_client.parser import text_string_to_metric_families

ENDPOINT = "/v1/active_checkout_sessions_and_expire_all"


def _samples(url: str) -> int:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(len(family.samples) for family in text_string_to_metric_families(text))


def test_every_method_but_get_on_the_endpoint_is_405_and_sweeps_nothing(api, fake_stripe):
    fake_stripe.state.seed(open_=5)
    token = api.token(api.add_user())
    headers = {"Authorization": f"Bearer {token}"}
    for method in ("HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "PURGE"):
        response = requests.request(method, f"{api.url}{ENDPOINT}", headers=headers, timeout=10)
        assert response.status_code == 405, method
        assert response.headers["Allow"] == "GET", method
    assert fake_stripe.state.snapshot()["open_total"] == 5
    assert fake_stripe.state.snapshot()["requests"].get("expire", 0) == 0
    statuses = [requests.get(f"{api.url}{ENDPOINT}", headers=headers, timeout=60).status_code]
    statuses += [requests.get(f"{api.url}{ENDPOINT}", headers=headers, timeout=60).status_code]
    assert statuses == [200, 200]  # the 405s spent none of the 3 an hour


def test_random_methods_and_paths_do_not_grow_the_metrics(api):
    rng = random.Random(21)

    def noise(count: int) -> None:
        for _ in range(count):
            method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 20)))
            path = "/" + "/".join(
                "".join(rng.choices(string.ascii_lowercase + string.digits, k=8))
                for _ in range(rng.randint(1, 3))
            )
            requests.request(method, f"{api.url}{path}", timeout=10)

    noise(50)  # every label value noise can reach now exists, the scrape's own included
    _samples(api.url)
    before = _samples(api.url)
    noise(1000)
    assert _samples(api.url) == before
