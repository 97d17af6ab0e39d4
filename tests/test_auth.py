"""Who is calling: the Bearer header, the token, and the claim that names a user."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkout_sweeper.errors import AuthError
from checkout_sweeper.tokens import MAX_USER_ID, bearer_token, user_id_from

CLAIM = "sub"


@pytest.mark.parametrize(
    "value",
    [
        2**40,
        "9" * 20,
        2**70,
        "²",
        "03",
        "003",
        "٣",
        "\uff13",
        " 3",
        "3 ",
        "+3",
        "-3",
        "3.0",
        "1e3",
        -1,
    ],
)
def test_other_spellings_and_out_of_range_ids_name_no_user(value):
    assert user_id_from({CLAIM: value}, CLAIM) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), ("3", 3), ("0", 0), (MAX_USER_ID, MAX_USER_ID), (str(MAX_USER_ID), MAX_USER_ID)],
)
def test_canonical_ids_name_their_row(value, expected):
    assert user_id_from({CLAIM: value}, CLAIM) == expected


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_claim_is_the_specs_missing_field(value):
    with pytest.raises(AuthError) as refused:
        user_id_from({CLAIM: value} if value is not None else {}, CLAIM)
    assert refused.value.http_status == 400 and "required" in refused.value.message


@pytest.mark.parametrize("value", [True, 3.0, [3], {"id": 3}])
def test_a_claim_of_another_type_is_400(value):
    with pytest.raises(AuthError) as refused:
        user_id_from({CLAIM: value}, CLAIM)
    assert refused.value.http_status == 400


@given(st.one_of(st.integers(), st.text()))
def test_any_string_or_integer_maps_to_at_most_one_row_and_never_raises(value):
    if value == "":
        with pytest.raises(AuthError):
            user_id_from({CLAIM: value}, CLAIM)
        return
    user_id = user_id_from({CLAIM: value}, CLAIM)
    if user_id is None:
        return
    assert 0 <= user_id <= MAX_USER_ID
    assert str(user_id) == str(value)  # only the canonical spelling reaches a row


@given(st.integers(min_value=0, max_value=MAX_USER_ID))
def test_every_row_id_is_reached_by_its_integer_and_its_canonical_string(row_id):
    assert user_id_from({CLAIM: row_id}, CLAIM) == row_id
    assert user_id_from({CLAIM: str(row_id)}, CLAIM) == row_id


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60))
def test_the_authorization_parser_accepts_one_bearer_token_or_says_401(header):
    try:
        token = bearer_token(header)
    except AuthError as refused:
        assert refused.http_status == 401
        return
    scheme, _, rest = header.strip().partition(" ")
    assert scheme.lower() == "bearer" and token == rest.strip() and " " not in token


@given(st.from_regex(r"[A-Za-z0-9_\-\.]{1,80}", fullmatch=True))
def test_any_bearer_token_is_read_back_whatever_the_scheme_case(token):
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert bearer_token(f"{scheme} {token}") == token
