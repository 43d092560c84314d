"""Hostile and malformed input for every identity mutation: a clear error, nothing written."""

import pytest

from tests.conftest import PASSWORD
from tests.test_identity import (
    APPLY,
    CREATE_ORG,
    CREATE_TOKEN,
    DEALER,
    KYC,
    LOGIN,
    REFRESH,
    REVIEW,
    SUBMIT_KYC,
)

MB = "x" * (1024 * 1024)
SQL = "'; DROP TABLE users; --"
HTML = "<script>alert(1)</script>"
REGISTER_Q = """mutation($input: RegisterInput!) { register(input: $input) {
  accessToken user { id } userErrors { field code message } } }"""

TABLES = ["users", "refresh_tokens", "api_tokens", "kyc_applications", "organizations",
          "minute_quotas", "admin_audit_log"]


async def snapshot(db) -> dict:
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


def reg(**over):
    return {"email": "ok@example.com", "password": PASSWORD, **over}


REGISTER_CASES = {
    "sql in email": reg(email=SQL),
    "html in email": reg(email=HTML + "@example.com"),
    "1MB email": reg(email=MB + "@example.com"),
    "1MB password": reg(password="A1" + MB),
    "1MB display name": reg(displayName=MB),
    "markup display name": reg(displayName=HTML),
    "nul in display name": reg(displayName="Ann\x00"),
    "empty email": reg(email=""),
    "blank password": reg(password=""),
    "weak password": reg(password="password"),
    "bad phone": reg(phone="call me maybe"),
    "unicode email": reg(email="😀@😀"),
    "zero-width name": reg(displayName="\u200b\u0007"),
}


@pytest.mark.parametrize("case", REGISTER_CASES, ids=str)
async def test_register_rejects(case, gql, db):
    before = await snapshot(db)
    body = await gql(REGISTER_Q, {"input": REGISTER_CASES[case]})
    payload = body["data"]["register"]
    assert payload["accessToken"] is None and payload["user"] is None
    assert payload["userErrors"], body
    assert all(e["code"] and e["message"] and e["field"][0] == "input" for e in payload["userErrors"])
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "variables",
    [{"input": {"email": "a@example.com"}}, {"input": {"email": 5, "password": PASSWORD}}, {"input": None}, {}],
    ids=["missing password", "wrong type", "null input", "no variables"],
)
async def test_register_rejects_malformed_variables(variables, gql, db):
    before = await snapshot(db)
    response = await gql.post(REGISTER_Q, variables)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await snapshot(db) == before


async def test_hostile_but_legitimate_text_is_stored_verbatim(gql, db):
    """Apostrophes and SQL-looking text are data: parameterised queries keep them harmless."""
    name = "O'Brien ' OR 1=1; DROP TABLE users; -- 名前 👍"
    body = await gql(REGISTER_Q, {"input": reg(displayName=name)})
    assert body["data"]["register"]["userErrors"] == []
    assert await db.fetchval("SELECT display_name FROM users") == name


@pytest.mark.parametrize(
    "email,password",
    [(SQL, PASSWORD), ("ok@example.com", SQL), (MB, PASSWORD), ("ok@example.com", MB), ("", ""), (HTML, HTML)],
)
async def test_login_rejects_without_writing(email, password, gql, db, make_user):
    await make_user()
    before = await snapshot(db)
    body = await gql(LOGIN, {"input": {"email": email, "password": password}})
    assert body["data"]["login"]["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    assert await snapshot(db) == before


@pytest.mark.parametrize("token", ["", SQL, MB, "fc_rt_" + "a" * 43, HTML])
async def test_refresh_rejects_without_writing(token, gql, db):
    before = await snapshot(db)
    body = await gql(REFRESH, {"token": token})
    assert body["data"]["refreshToken"]["userErrors"][0]["code"] == "INVALID_REFRESH_TOKEN"
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "token_input",
    [{"name": ""}, {"name": MB}, {"name": HTML}, {"name": "ok", "scopes": []}, {"name": "ok", "scopes": [SQL]},
     {"name": "ok", "scopes": ["read", MB]}],
    ids=["empty", "1MB", "markup", "no scopes", "sql scope", "1MB scope"],
)
async def test_create_api_token_rejects(token_input, gql, db, make_user):
    account = await make_user()
    before = await snapshot(db)
    body = await gql(CREATE_TOKEN, {"input": token_input}, token=account.token)
    payload = body["data"]["createApiToken"]
    assert payload["token"] is None and payload["userErrors"]
    assert await snapshot(db) == before


@pytest.mark.parametrize("name", ["", "   ", MB, HTML, "Org\x00", "a" * 121])
async def test_create_organization_rejects(name, gql, db, make_user):
    account = await make_user()
    before = await snapshot(db)
    body = await gql(CREATE_ORG, {"input": {"name": name}}, token=account.token)
    payload = body["data"]["createOrganization"]
    assert payload["organization"] is None and payload["userErrors"][0]["field"] == ["input", "name"]
    assert await snapshot(db) == before


KYC_CASES = {
    "1MB name": {**KYC, "fullName": MB},
    "markup name": {**KYC, "fullName": HTML},
    "empty id": {**KYC, "idNumber": " "},
    "no documents": {**KYC, "documents": []},
    "javascript document": {**KYC, "documents": ["javascript:alert(1)"]},
    "too many documents": {**KYC, "documents": ["https://f.example/x"] * 11},
    "1MB document": {**KYC, "documents": ["https://" + MB]},
    "nul address": {**KYC, "address": "1 Road\x00"},
}


@pytest.mark.parametrize("case", KYC_CASES, ids=str)
async def test_submit_kyc_rejects(case, gql, db, make_user):
    account = await make_user()
    before = await snapshot(db)
    body = await gql(SUBMIT_KYC, {"input": KYC_CASES[case]}, token=account.token)
    assert body["data"]["submitKyc"]["userErrors"]
    assert await snapshot(db) == before
    assert await db.fetchval("SELECT kyc_status FROM users WHERE id = $1", account.raw_id) == "none"


DEALER_CASES = {
    "bad phone": {**DEALER, "phone": SQL},
    "1MB business": {**DEALER, "businessName": MB},
    "markup business": {**DEALER, "businessName": HTML},
    "empty registration": {**DEALER, "registrationNumber": ""},
    "bad document": {**DEALER, "documents": ["ftp://x"]},
}


@pytest.mark.parametrize("case", DEALER_CASES, ids=str)
async def test_apply_for_dealer_rejects(case, gql, db, make_user):
    account = await make_user()
    before = await snapshot(db)
    body = await gql(APPLY, {"input": DEALER_CASES[case]}, token=account.token)
    assert body["data"]["applyForDealer"]["userErrors"]
    assert await snapshot(db) == before


async def test_every_field_error_is_reported_at_once(gql, make_user):
    account = await make_user()
    body = await gql(APPLY, {"input": {"businessName": "", "registrationNumber": "", "address": "",
                                       "phone": "x", "documents": []}}, token=account.token)
    fields = {tuple(e["field"]) for e in body["data"]["applyForDealer"]["userErrors"]}
    assert {("input", f) for f in ("businessName", "registrationNumber", "address", "phone", "documents")} <= fields


@pytest.mark.parametrize("review", [{"userId": SQL, "approve": True}, {"userId": MB, "approve": True},
                                    {"userId": "VXNlcjox", "approve": False, "reason": MB}])
async def test_review_rejects(review, gql, db, make_user):
    admin, user = await make_user("admin"), await make_user()
    await gql(SUBMIT_KYC, {"input": KYC}, token=user.token)
    before = await snapshot(db)
    body = await gql(REVIEW, {"input": review}, token=admin.token)
    assert body["data"]["reviewKycApplication"]["userErrors"]
    assert await snapshot(db) == before
