"""Property-based conformance: schemathesis generates requests from ``/openapi.json`` and
checks every answer of the running API (with the fake Stripe) against it, for a client with a
valid token and for one without."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from checkout_sweeper.web.openapi.document import openapi_spec

schema = schemathesis.openapi.from_dict(openapi_spec("/v1"))
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def _beyond_the_schema(case: schemathesis.Case) -> list:
    """A body the schema allows can still be refused for what no schema says (a cron
    expression's fields, an Idempotency-Key first used with another body): those answers are
    documented 400s and 422s, checked like every other answer."""
    return [positive_data_acceptance] if case.method == "POST" else []


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One API for the whole module (schemathesis calls it many times)."""
    from checkout_sweeper.fake_stripe import FakeStripeServer

    from helpers import serve_api

    tmp = tmp_path_factory.mktemp("schemathesis")
    with FakeStripeServer() as fake:
        fake.state.seed(open_=20)
        with serve_api(tmp, fake.url) as api:
            yield api, api.add_user()


@schema.parametrize()
@SETTINGS
def test_an_authorised_client_gets_documented_answers(case, served):
    api, user_id = served
    token = api.token(user_id)
    case.call_and_validate(
        base_url=api.url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=_beyond_the_schema(case),
    )


@schema.parametrize()
@SETTINGS
def test_an_unauthenticated_client_gets_documented_answers(case, served):
    api, _ = served
    case.call_and_validate(base_url=api.url, excluded_checks=_beyond_the_schema(case))
