"""Identity through the real API: sessions, tokens, KYC, dealer review, organizations."""

import asyncio

import asyncpg
import pytest

from tests.conftest import PASSWORD, REGISTER

LOGIN = """mutation($input: LoginInput!) { login(input: $input) {
  accessToken refreshToken user { id email } userErrors { field code message } } }"""
REFRESH = """mutation($token: String!) { refreshToken(token: $token) {
  accessToken refreshToken userErrors { field code message } } }"""
CREATE_TOKEN = """mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) {
  token userErrors { field code message } } }"""
SUBMIT_KYC = """mutation($input: SubmitKycInput!) { submitKyc(input: $input) {
  user { kycStatus role } userErrors { field code message } } }"""
APPLY = """mutation($input: ApplyForDealerInput!) { applyForDealer(input: $input) {
  user { kycStatus role } userErrors { field code message } } }"""
REVIEW = """mutation($input: ReviewKycInput!) { reviewKycApplication(input: $input) {
  user { id role kycStatus } userErrors { field code message } } }"""
CREATE_ORG = """mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) {
  organization { id name plan minutesRemaining } userErrors { field code message } } }"""

KYC = {"fullName": "Ada Obi", "idNumber": "NIN-12345", "address": "1 Marina, Lagos",
       "documents": ["https://files.example/id.png"]}
DEALER = {"businessName": "Lekki Motors Ltd", "registrationNumber": "RC-778899",
          "address": "5 Admiralty Way, Lekki", "phone": "+2348012345678",
          "documents": ["https://files.example/cac.pdf", "s3://kyc/id.png"]}


async def test_register_returns_tokens_that_work(gql):
    body = await gql(REGISTER, {"input": {"email": "New.Person@Example.com", "password": PASSWORD,
                                          "displayName": "New Person", "phone": "+234 801 234 5678"}})
    payload = body["data"]["register"]
    assert payload["userErrors"] == []
    assert payload["user"]["email"] == "new.person@example.com"
    assert payload["user"]["role"] == "USER" and payload["user"]["kycStatus"] == "NONE"
    me = await gql("{ me { email displayName } }", token=payload["accessToken"])
    assert me["data"]["me"] == {"email": "new.person@example.com", "displayName": "New Person"}


async def test_password_is_hashed_with_argon2(gql, db):
    await gql(REGISTER, {"input": {"email": "hash@example.com", "password": PASSWORD}})
    stored = await db.fetchval("SELECT password_hash FROM users WHERE email = 'hash@example.com'")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_duplicate_email_is_refused_case_insensitively(gql, db):
    await gql(REGISTER, {"input": {"email": "dup@example.com", "password": PASSWORD}})
    body = await gql(REGISTER, {"input": {"email": "DUP@example.com", "password": PASSWORD}})
    assert body["data"]["register"]["userErrors"][0]["code"] == "EMAIL_TAKEN"
    assert body["data"]["register"]["userErrors"][0]["field"] == ["input", "email"]
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_concurrent_registrations_of_one_email_create_one_user(gql, db):
    results = await asyncio.gather(*[
        gql(REGISTER, {"input": {"email": "race@example.com", "password": PASSWORD}}) for _ in range(8)
    ])
    ok = [r for r in results if r["data"]["register"]["userErrors"] == []]
    assert len(ok) == 1
    assert all(r["data"]["register"]["userErrors"][0]["code"] == "EMAIL_TAKEN" for r in results if r not in ok)
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_login_success_and_uniform_failure(gql, make_user):
    account = await make_user()
    ok = await gql(LOGIN, {"input": {"email": account.email.upper(), "password": PASSWORD}})
    assert ok["data"]["login"]["userErrors"] == [] and ok["data"]["login"]["accessToken"]
    wrong = await gql(LOGIN, {"input": {"email": account.email, "password": "Wrong1234"}})
    unknown = await gql(LOGIN, {"input": {"email": "nobody@example.com", "password": "Wrong1234"}})
    assert wrong["data"]["login"]["userErrors"] == unknown["data"]["login"]["userErrors"]
    assert wrong["data"]["login"]["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    assert wrong["data"]["login"]["accessToken"] is None


async def test_disabled_account_cannot_log_in_or_use_tokens(gql, make_user, db):
    account = await make_user()
    await db.execute("UPDATE users SET is_active = false WHERE id = $1", account.raw_id)
    body = await gql(LOGIN, {"input": {"email": account.email, "password": PASSWORD}})
    assert body["data"]["login"]["userErrors"][0]["code"] == "ACCOUNT_DISABLED"
    me = await gql("{ me { id } }", token=account.token)
    assert me["status"] == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(gql, make_user, db):
    account = await make_user()
    first = (await gql(REFRESH, {"token": account.refresh}))["data"]["refreshToken"]
    assert first["userErrors"] == [] and first["refreshToken"] != account.refresh
    second = (await gql(REFRESH, {"token": first["refreshToken"]}))["data"]["refreshToken"]
    assert second["userErrors"] == []
    # The original token is replayed (stolen): the whole family dies, including the newest.
    replay = (await gql(REFRESH, {"token": account.refresh}))["data"]["refreshToken"]
    assert replay["userErrors"][0]["code"] == "REFRESH_TOKEN_REUSED"
    assert replay["accessToken"] is None
    newest = (await gql(REFRESH, {"token": second["refreshToken"]}))["data"]["refreshToken"]
    assert newest["userErrors"][0]["code"] == "REFRESH_TOKEN_REUSED"
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL") == 0


async def test_refresh_tokens_expire(gql, make_user, clock):
    account = await make_user()
    clock.advance(days=8)
    body = await gql(REFRESH, {"token": account.refresh})
    assert body["data"]["refreshToken"]["userErrors"][0]["code"] == "REFRESH_TOKEN_EXPIRED"


async def test_access_tokens_expire(gql, make_user, clock):
    account = await make_user()
    assert (await gql("{ me { id } }", token=account.token))["status"] == 200
    clock.advance(hours=24, seconds=1)
    body = await gql("{ me { id } }", token=account.token)
    assert body["status"] == 401 and "expired" in body["errors"][0]["message"]


async def test_forged_token_is_rejected(gql, make_user):
    import jwt
    account = await make_user()
    forged = jwt.encode({"sub": str(account.raw_id), "iat": 0, "exp": 9_999_999_999, "iss": "forecourt",
                         "typ": "access"}, "some-other-secret-" + "y" * 30, algorithm="HS256")
    assert (await gql("{ me { id } }", token=forged))["status"] == 401
    # A verified token is remembered by its exact text: the same claims re-signed are not it.
    assert (await gql("{ me { id } }", token=account.token))["status"] == 200
    header, claims, _ = account.token.split(".")
    resigned = f"{header}.{claims}.{forged.split('.')[2]}"
    assert (await gql("{ me { id } }", token=resigned))["status"] == 401


async def test_api_tokens_are_hashed_and_scoped(gql, make_user, db):
    account = await make_user()
    body = await gql(CREATE_TOKEN, {"input": {"name": "import script", "scopes": ["read"]}}, token=account.token)
    token = body["data"]["createApiToken"]["token"]
    assert token.startswith("fc_pat_")
    stored = await db.fetchrow("SELECT token_hash, prefix, scopes FROM api_tokens")
    assert token not in stored["token_hash"] and stored["scopes"] == ["read"]
    me = await gql("{ me { id email } }", token=token)
    assert me["data"]["me"]["email"] == account.email
    # a read-only token cannot write
    denied = await gql(CREATE_ORG, {"input": {"name": "X"}}, token=token)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # and no API token can mint tokens
    writer = (await gql(CREATE_TOKEN, {"input": {"name": "rw"}}, token=account.token))["data"]["createApiToken"]["token"]
    minted = await gql(CREATE_TOKEN, {"input": {"name": "child"}}, token=writer)
    assert minted["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_api_token_scopes_are_validated(gql, make_user, db):
    account = await make_user()
    body = await gql(CREATE_TOKEN, {"input": {"name": "x", "scopes": ["admin"]}}, token=account.token)
    assert body["data"]["createApiToken"]["userErrors"][0]["code"] == "INVALID_SCOPE"
    assert body["data"]["createApiToken"]["token"] is None
    assert await db.fetchval("SELECT count(*) FROM api_tokens") == 0


async def test_revoked_api_token_stops_working(gql, make_user, db):
    account = await make_user()
    token = (await gql(CREATE_TOKEN, {"input": {"name": "ci"}}, token=account.token))["data"]["createApiToken"]["token"]
    from forecourt.schema.relay import to_global_id
    token_id = await db.fetchval("SELECT id FROM api_tokens")
    revoked = await gql("mutation($id: ID!) { revokeApiToken(id: $id) { revoked userErrors { code } } }",
                        {"id": to_global_id("ApiToken", token_id)}, token=account.token)
    assert revoked["data"]["revokeApiToken"] == {"revoked": True, "userErrors": []}
    assert (await gql("{ me { id } }", token=token))["status"] == 401


async def test_another_users_email_is_hidden(gql, make_user):
    alice, bob = await make_user(), await make_user()
    query = "query($id: ID!) { node(id: $id) { ... on User { displayName email } } }"
    body = await gql(query, {"id": alice.id}, token=bob.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    own = await gql(query, {"id": alice.id}, token=alice.token)
    assert own["data"]["node"]["email"] == alice.email
    admin = await make_user("admin")
    assert (await gql(query, {"id": alice.id}, token=admin.token))["data"]["node"]["email"] == alice.email


PROFILE = "query($id: ID!) { node(id: $id) { ... on User { id displayName %s } } }"


@pytest.mark.parametrize("field", ["role", "kycStatus", "createdAt"])
async def test_others_see_only_the_public_profile(gql, make_user, field):
    alice = await make_user("dealer")
    query = PROFILE % field
    for viewer, code in [(None, "UNAUTHENTICATED"), (await make_user(), "FORBIDDEN"),
                         (await make_user("concierge"), "FORBIDDEN")]:
        body = await gql(query, {"id": alice.id}, token=viewer and viewer.token)
        assert [e["extensions"]["code"] for e in body["errors"]] == [code] and body["data"]["node"] is None
    public = await gql(PROFILE % "", {"id": alice.id})
    assert public["data"]["node"] == {"id": alice.id, "displayName": None} and "errors" not in public
    for viewer in (alice, await make_user("manager"), await make_user("admin")):
        body = await gql(query, {"id": alice.id}, token=viewer.token)
        assert "errors" not in body and body["data"]["node"][field] is not None


async def test_the_public_profile_holds_on_every_path_to_a_user(gql, make_user, make_organization):
    """A User reached through a relation is the same public profile (here a vehicle's lister
    and a fellow member of an organization)."""
    from tests.test_catalog import create as create_vehicle

    dealer = await make_user("dealer")
    vehicle = (await create_vehicle(gql, dealer))["vehicle"]
    query = "query($id: ID!) { vehicle(id: $id) { listedBy { displayName %s } } }"
    for field in ("role", "kycStatus", "createdAt"):
        for token, code in [(None, "UNAUTHENTICATED"), ((await make_user()).token, "FORBIDDEN")]:
            body = await gql(query % field, {"id": vehicle["id"]}, token=token)
            assert body["data"]["vehicle"]["listedBy"] is None
            assert [(e["path"][-1], e["extensions"]["code"]) for e in body["errors"]] == [(field, code)]
        assert "errors" not in await gql(query % field, {"id": vehicle["id"]}, token=dealer.token)
    org = await make_organization(members=1)
    members = await gql("{ me { organization { members { edges { node { id displayName role } } } } } }",
                        token=org.members[0].token)
    assert {e["extensions"]["code"] for e in members["errors"]} == {"FORBIDDEN"}  # the admin's role
    assert len(members["errors"]) == 1


async def test_bidder_kyc_flow_with_audit(gql, make_user, db):
    user, admin = await make_user(), await make_user("admin")
    body = await gql(SUBMIT_KYC, {"input": KYC}, token=user.token)
    assert body["data"]["submitKyc"] == {"user": {"kycStatus": "PENDING", "role": "USER"}, "userErrors": []}
    again = await gql(SUBMIT_KYC, {"input": KYC}, token=user.token)
    assert again["data"]["submitKyc"]["userErrors"][0]["code"] == "APPLICATION_PENDING"

    listed = await gql("{ kycApplications(status: PENDING) { totalCount edges { node { kind details applicant { id } } } } }",
                       token=admin.token)
    apps = listed["data"]["kycApplications"]
    assert apps["totalCount"] == 1 and apps["edges"][0]["node"]["applicant"]["id"] == user.id
    assert apps["edges"][0]["node"]["details"]["fullName"] == "Ada Obi"

    approved = await gql(REVIEW, {"input": {"userId": user.id, "approve": True}}, token=admin.token)
    assert approved["data"]["reviewKycApplication"]["user"]["kycStatus"] == "APPROVED"
    assert approved["data"]["reviewKycApplication"]["user"]["role"] == "USER"
    audit = await db.fetchrow("SELECT * FROM admin_audit_log")
    assert audit["action"] == "bidder_application_approved" and audit["admin_id"] == admin.raw_id
    assert audit["target_id"] == user.raw_id and audit["ip_address"] is not None


async def test_dealer_application_approval_makes_a_dealer(gql, make_user, db):
    user, admin = await make_user(), await make_user("admin")
    body = await gql(APPLY, {"input": DEALER}, token=user.token)
    assert body["data"]["applyForDealer"]["userErrors"] == []
    # not a dealer until approved
    assert await db.fetchval("SELECT role FROM users WHERE id = $1", user.raw_id) == "user"
    reviewed = await gql(REVIEW, {"input": {"userId": user.id, "approve": True}}, token=admin.token)
    assert reviewed["data"]["reviewKycApplication"]["user"]["role"] == "DEALER"
    me = await gql("{ me { role kycStatus } }", token=user.token)
    assert me["data"]["me"] == {"role": "DEALER", "kycStatus": "APPROVED"}
    assert await db.fetchval("SELECT action FROM admin_audit_log") == "dealer_application_approved"


async def test_rejection_requires_a_reason_and_writes_nothing(gql, make_user, db):
    user, admin = await make_user(), await make_user("admin")
    await gql(APPLY, {"input": DEALER}, token=user.token)
    body = await gql(REVIEW, {"input": {"userId": user.id, "approve": False}}, token=admin.token)
    assert body["data"]["reviewKycApplication"]["userErrors"][0]["code"] == "REASON_REQUIRED"
    assert await db.fetchval("SELECT status FROM kyc_applications") == "pending"
    assert await db.fetchval("SELECT count(*) FROM admin_audit_log") == 0
    body = await gql(REVIEW, {"input": {"userId": user.id, "approve": False, "reason": "CAC certificate illegible"}},
                     token=admin.token)
    assert body["data"]["reviewKycApplication"]["user"]["kycStatus"] == "REJECTED"
    assert await db.fetchval("SELECT reason FROM admin_audit_log") == "CAC certificate illegible"
    # they may fix it and apply again
    assert (await gql(APPLY, {"input": DEALER}, token=user.token))["data"]["applyForDealer"]["userErrors"] == []


async def test_review_without_pending_application(gql, make_user):
    user, admin = await make_user(), await make_user("admin")
    body = await gql(REVIEW, {"input": {"userId": user.id, "approve": True}}, token=admin.token)
    assert body["data"]["reviewKycApplication"]["userErrors"][0]["code"] == "NO_PENDING_APPLICATION"
    bad = await gql(REVIEW, {"input": {"userId": "not-an-id", "approve": True}}, token=admin.token)
    assert bad["data"]["reviewKycApplication"]["userErrors"][0]["code"] == "INVALID_ID"
    assert bad["data"]["reviewKycApplication"]["userErrors"][0]["field"] == ["input", "userId"]


async def test_audit_log_is_immutable(gql, make_user, db):
    user, admin = await make_user(), await make_user("admin")
    await gql(SUBMIT_KYC, {"input": KYC}, token=user.token)
    await gql(REVIEW, {"input": {"userId": user.id, "approve": True}}, token=admin.token)
    for statement in ("UPDATE admin_audit_log SET reason = 'edited'", "DELETE FROM admin_audit_log",
                      "TRUNCATE admin_audit_log"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM admin_audit_log") == 1


async def test_dealer_role_needs_approved_kyc_in_the_database_too(db, make_user):
    user = await make_user()
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE users SET role = 'dealer' WHERE id = $1", user.raw_id)


async def test_create_organization(gql, make_user, db):
    user = await make_user()
    body = await gql(CREATE_ORG, {"input": {"name": "  Lekki Motors  "}}, token=user.token)
    org = body["data"]["createOrganization"]["organization"]
    assert org["name"] == "Lekki Motors" and org["plan"] == "FREE" and org["minutesRemaining"] == 60
    me = await gql("{ me { organization { id name plan minutesRemaining } } }", token=user.token)
    assert me["data"]["me"]["organization"] == org
    assert await db.fetchval("SELECT org_role FROM users WHERE id = $1", user.raw_id) == "admin"
    again = await gql(CREATE_ORG, {"input": {"name": "Second"}}, token=user.token)
    assert again["data"]["createOrganization"]["userErrors"][0]["code"] == "ALREADY_IN_ORGANIZATION"
    assert await db.fetchval("SELECT count(*) FROM organizations") == 1
    # outsiders do not see it
    outsider = await make_user()
    node = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": org["id"]}, token=outsider.token)
    assert node["data"]["node"] is None


async def test_kyc_applications_paginate_with_constant_statements(gql, make_user, server):
    admin = await make_user("admin")
    for _ in range(7):
        applicant = await make_user()
        await gql(SUBMIT_KYC, {"input": KYC}, token=applicant.token)
    query = """query($first: Int, $after: String) { kycApplications(first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id applicant { id email organization { id } } } } } }"""
    seen, after = [], None
    while True:
        page = (await gql(query, {"first": 3, "after": after}, token=admin.token))["data"]["kycApplications"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 7

    counts = {}
    for first in (2, 7):
        server.statements.reset()
        body = await gql(query, {"first": first}, token=admin.token)
        assert len(body["data"]["kycApplications"]["edges"]) == first
        counts[first] = server.statements.count
    assert counts[2] == counts[7], counts


async def test_invalid_cursor_and_page_size(gql, make_user):
    admin = await make_user("admin")
    body = await gql("{ kycApplications(after: \"garbage\") { totalCount } }", token=admin.token)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "reason": "INVALID_CURSOR", "field": ["after"]}
    body = await gql("{ kycApplications(first: 1000) { totalCount } }", token=admin.token)
    assert body["errors"][0]["extensions"]["reason"] == "PAGE_SIZE_TOO_LARGE"


async def test_api_tokens_are_listed_without_their_secret(gql, make_user, server):
    account, other = await make_user(), await make_user()
    created = await gql("mutation { createApiToken(input: {name: \"nightly import\", scopes: [\"write\", \"read\"]}) "
                        "{ token apiToken { id name prefix scopes lastUsedAt } userErrors { code } } }",
                        token=account.token)
    payload = created["data"]["createApiToken"]
    assert payload["token"].startswith(payload["apiToken"]["prefix"])
    assert payload["apiToken"]["scopes"] == ["read", "write"]
    await gql("{ me { id } }", token=payload["token"])  # marks it used
    listed = await gql("{ me { apiTokens { id name lastUsedAt } } }", token=account.token)
    assert listed["data"]["me"]["apiTokens"][0]["id"] == payload["apiToken"]["id"]
    assert listed["data"]["me"]["apiTokens"][0]["lastUsedAt"] is not None
    assert payload["token"] not in str(listed)
    hidden = await gql("query($id: ID!) { node(id: $id) { ... on User { apiTokens { id } } } }",
                       {"id": account.id}, token=other.token)
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# ---------------------------------------------------------------- password change and sign-out

CHANGE_PASSWORD = """mutation($input: ChangePasswordInput!) { changePassword(input: $input) {
  accessToken refreshToken user { id } userErrors { field code message } } }"""
LOGOUT = """mutation($token: String!) { logout(input: {refreshToken: $token}) { userErrors { field code } } }"""
LOGOUT_EVERYWHERE = "mutation { logoutEverywhere { userErrors { code } } }"
NEW_PASSWORD = "N3w-and-l0nger!"


async def login(gql, account, password=PASSWORD):
    return (await gql(LOGIN, {"input": {"email": account.email, "password": password}}))["data"]["login"]


async def api_token(gql, account):
    return (await gql(CREATE_TOKEN, {"input": {"name": "script"}}, token=account.token))["data"]["createApiToken"]["token"]


async def assert_signed_out(gql, access_token):
    body = await gql("{ me { id } }", token=access_token)
    assert body["status"] == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def assert_cannot_refresh(gql, refresh_token):
    refreshed = (await gql(REFRESH, {"token": refresh_token}))["data"]["refreshToken"]
    assert refreshed["accessToken"] is None and refreshed["userErrors"]


async def test_changing_the_password_ends_every_other_way_in(gql, make_user, db):
    account = await make_user()
    other_device, script = await login(gql, account), await api_token(gql, account)
    wrong = (await gql(CHANGE_PASSWORD, {"input": {"currentPassword": "Wr0ng-guess!", "newPassword": NEW_PASSWORD}},
                       token=account.token))["data"]["changePassword"]
    assert wrong["userErrors"][0]["field"] == ["input", "currentPassword"] and wrong["accessToken"] is None
    weak = (await gql(CHANGE_PASSWORD, {"input": {"currentPassword": PASSWORD, "newPassword": "short"}},
                      token=account.token))["data"]["changePassword"]
    assert weak["userErrors"][0]["field"] == ["input", "newPassword"]
    assert (await gql("{ me { id } }", token=script))["data"]["me"]["id"] == account.id  # nothing changed yet

    changed = (await gql(CHANGE_PASSWORD, {"input": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}},
                         token=account.token))["data"]["changePassword"]
    assert changed["userErrors"] == [] and changed["user"]["id"] == account.id
    for old in (account.token, other_device["accessToken"], script):
        await assert_signed_out(gql, old)
    for old in (account.refresh, other_device["refreshToken"]):
        await assert_cannot_refresh(gql, old)
    assert (await gql("{ me { id } }", token=changed["accessToken"]))["data"]["me"]["id"] == account.id
    fresh = (await gql(REFRESH, {"token": changed["refreshToken"]}))["data"]["refreshToken"]
    assert fresh["userErrors"] == [] and (await gql("{ me { id } }", token=fresh["accessToken"]))["status"] == 200
    assert (await login(gql, account))["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    assert (await login(gql, account, NEW_PASSWORD))["userErrors"] == []

    new_script = (await gql(CREATE_TOKEN, {"input": {"name": "script"}}, token=changed["accessToken"])
                  )["data"]["createApiToken"]["token"]
    by_script = await gql(CHANGE_PASSWORD, {"input": {"currentPassword": NEW_PASSWORD, "newPassword": PASSWORD}},
                          token=new_script)
    assert by_script["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # an API token cannot


async def test_logout_ends_one_session_and_logout_everywhere_all(gql, make_user, make_organization):
    account, stranger = await make_user(), await make_user()
    phone, laptop = await login(gql, account), await login(gql, account)
    refused = (await gql(LOGOUT, {"token": phone["refreshToken"]}, token=stranger.token))["data"]["logout"]
    assert refused["userErrors"] == [{"field": ["input", "refreshToken"], "code": "INVALID_REFRESH_TOKEN"}]
    assert (await gql(LOGOUT, {"token": phone["refreshToken"]}, token=phone["accessToken"]))["data"]["logout"] == {
        "userErrors": []}
    await assert_cannot_refresh(gql, phone["refreshToken"])
    rotated = (await gql(REFRESH, {"token": laptop["refreshToken"]}))["data"]["refreshToken"]  # the other goes on
    assert rotated["userErrors"] == []

    script = await api_token(gql, account)
    ended = await gql(LOGOUT_EVERYWHERE, token=rotated["accessToken"])
    assert ended["data"]["logoutEverywhere"] == {"userErrors": []}
    for old in (account.token, phone["accessToken"], laptop["accessToken"], rotated["accessToken"]):
        await assert_signed_out(gql, old)
    for old in (account.refresh, rotated["refreshToken"]):
        await assert_cannot_refresh(gql, old)
    assert (await gql("{ me { id } }", token=script))["data"]["me"]["id"] == account.id  # API tokens stay
    again = await login(gql, account)
    assert (await gql("{ me { id } }", token=again["accessToken"]))["data"]["me"]["id"] == account.id


async def test_a_cached_caller_is_signed_out_too(tmp_path, database_url, clock):
    """With the principal cache on, a token of an older epoch is refused even while its caller
    is cached, and a new token is not refused because the cache remembers the old epoch."""
    from tests.conftest import make_settings
    from tests.harness import GraphQLClient, LiveServer

    live = LiveServer(make_settings(tmp_path, PRINCIPAL_CACHE_SECONDS=60), database_url, clock).start()
    client = GraphQLClient(live.url)
    try:
        registered = (await client(REGISTER, {"input": {"email": "cached@example.com", "password": PASSWORD}}
                                   ))["data"]["register"]
        old = registered["accessToken"]
        assert (await client("{ me { id } }", token=old))["status"] == 200  # now cached
        changed = (await client(CHANGE_PASSWORD, {"input": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}},
                                token=old))["data"]["changePassword"]
        assert (await client("{ me { id } }", token=changed["accessToken"]))["status"] == 200
        await assert_signed_out(client, old)
    finally:
        await client.close()
        live.stop()


async def test_a_password_is_the_same_however_its_accents_were_typed(gql, db):
    composed, decomposed = "Caf\u00e9Noir7", "Cafe\u0301Noir7"
    registered = await gql(REGISTER, {"input": {"email": "cafe@example.com", "password": decomposed}})
    assert registered["data"]["register"]["userErrors"] == []
    for typed in (composed, decomposed):
        body = await gql(LOGIN, {"input": {"email": "cafe@example.com", "password": typed}})
        assert body["data"]["login"]["userErrors"] == [], typed
    padded = await gql(REGISTER, {"input": {"email": "zw@example.com", "password": "A1" + "\u200b" * 6}})
    assert padded["data"]["register"]["userErrors"][0]["code"] == "INVALID_CHARACTERS"
    common = await gql(REGISTER, {"input": {"email": "common@example.com", "password": "Password123!"}})
    assert common["data"]["register"]["userErrors"][0]["code"] == "COMMON_PASSWORD"


async def test_a_password_hashed_before_normalisation_still_works_and_is_rehashed(gql, db, settings):
    from argon2 import PasswordHasher

    decomposed = "Cafe\u0301Noir7"
    await gql(REGISTER, {"input": {"email": "legacy@example.com", "password": PASSWORD}})
    hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)
    await db.execute("UPDATE users SET password_hash = $1 WHERE email = 'legacy@example.com'", hasher.hash(decomposed))
    as_typed = await gql(LOGIN, {"input": {"email": "legacy@example.com", "password": decomposed}})
    assert as_typed["data"]["login"]["userErrors"] == []
    stored = await db.fetchval("SELECT password_hash FROM users WHERE email = 'legacy@example.com'")
    assert hasher.verify(stored, "Caf\u00e9Noir7")  # re-hashed in NFKC form
    composed = await gql(LOGIN, {"input": {"email": "legacy@example.com", "password": "Caf\u00e9Noir7"}})
    assert composed["data"]["login"]["userErrors"] == []
