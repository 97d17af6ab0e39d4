"""Property-based conformance: schemathesis generates requests for every operation of
``/openapi.json`` (GET, POST and DELETE; valid data and data the schema forbids) and checks
every answer of the running API (with the fake Stripe, on PostgreSQL, which enforces what
SQLite lets by: NUL bytes, integer widths, column lengths) against it, for a client with a
valid token and for one without. The seed is fixed, so a run is the same every time; no answer
may be a 5xx but the documented 503 (a dependency away)."""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from checkout_sweeper.store.database import Database
from checkout_sweeper.web.openapi.document import openapi_spec

from helpers import fresh_postgres

pytestmark = pytest.mark.services
SEED = 20261207
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
    }
)
schema = schemathesis.openapi.from_dict(openapi_spec("/v1"), config=CONFIG)
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def test_every_operation_of_the_document_is_generated():
    loaded = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in loaded)
    labels = {result.ok().label for result in loaded if isinstance(result, Ok)}
    assert {label.split()[0] for label in labels} == {"GET", "POST", "DELETE"}
    assert len(labels) == len(loaded) == 11
    assert schema.config.seed == SEED


def _beyond_the_schema(case: schemathesis.Case) -> list:
    """A body the schema allows can still be refused for what no schema says (a cron
    expression that names no date, a bound of a value, an Idempotency-Key first used with
    another body): those answers are documented 400s and 422s, checked like every other
    answer."""
    return [positive_data_acceptance] if case.method == "POST" else []


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One API for the whole module (schemathesis calls it many times), on a PostgreSQL
    database of its own."""
    from checkout_sweeper.fake_stripe import FakeStripeServer

    from helpers import serve_api

    tmp = tmp_path_factory.mktemp("schemathesis")
    with fresh_postgres() as database, FakeStripeServer() as fake:
        Database(database).upgrade()
        fake.state.seed(open_=20)
        with serve_api(tmp, fake.url, DATABASE_URL=database) as api:
            yield api


USERS = itertools.count(1)


@schema.parametrize()
@SETTINGS
def test_an_authorised_client_gets_documented_answers(case, served):
    """Each request by a user of its own: with one user, the quota (3 sweeps an hour, 120
    reads a minute) would answer most of them 429, before anything else is checked."""
    api = served
    token = api.token(api.add_user(f"client-{next(USERS)}@example.com"))
    case.call_and_validate(
        base_url=api.url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=_beyond_the_schema(case),
    )


@schema.parametrize()
@SETTINGS
def test_an_unauthenticated_client_gets_documented_answers(case, served):
    case.call_and_validate(base_url=served.url, excluded_checks=_beyond_the_schema(case))
