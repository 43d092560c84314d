"""Organization membership through the API: invitations by email, accepting and declining,
removing and leaving, an admin always left, and who may see whom."""

from datetime import timedelta

from forecourt.schema.relay import to_global_id
from tests.conftest import PASSWORD, REGISTER

INVITE = """mutation($email: String!, $role: OrganizationRole) { inviteToOrganization(input: {email: $email, role: $role}) {
  invitation { id email role status organizationName expiresAt } token userErrors { field code message } } }"""
ACCEPT = """mutation($id: ID!, $token: String!) { acceptOrganizationInvitation(input: {invitationId: $id, token: $token}) {
  organization { id name } userErrors { field code message } } }"""
DECLINE = """mutation($id: ID!) { declineOrganizationInvitation(input: {invitationId: $id}) {
  invitation { status } userErrors { code } } }"""
REMOVE = """mutation($id: ID!) { removeOrganizationMember(input: {userId: $id}) { organization { id } userErrors { code } } }"""
LEAVE = "mutation { leaveOrganization { userErrors { code message } } }"
MINE = "{ organizationInvitations { id organizationName role } }"
MEMBERS = "{ me { organization { members(first: 50) { totalCount edges { node { id } } } } } }"


async def test_invite_accept_and_see_each_other(gql, make_organization, make_user, db, clock):
    org = await make_organization("Lagos Motors", members=0)
    rep, stranger = await make_user("user"), await make_user("user")

    refused = await gql(INVITE, {"email": rep.email}, token=stranger.token)  # not an admin of anything
    assert refused["data"]["inviteToOrganization"]["userErrors"][0]["code"] == "NO_ORGANIZATION"
    bad = await gql(INVITE, {"email": "not-an-email"}, token=org.admin.token)
    assert bad["data"]["inviteToOrganization"]["userErrors"][0]["field"] == ["input", "email"]
    assert await db.fetchval("SELECT count(*) FROM organization_invitations") == 0

    first = (await gql(INVITE, {"email": rep.email.upper(), "role": "MEMBER"}, token=org.admin.token)
             )["data"]["inviteToOrganization"]
    sent = first["invitation"]
    assert sent["email"] == rep.email and sent["status"] == "PENDING" and sent["organizationName"] == "Lagos Motors"
    renewed = (await gql(INVITE, {"email": rep.email, "role": "ADMIN"}, token=org.admin.token)
               )["data"]["inviteToOrganization"]
    again, secret = renewed["invitation"], renewed["token"]
    assert again["id"] == sent["id"] and again["role"] == "ADMIN"  # renewed, not duplicated
    assert secret.startswith("fc_inv_") and secret != first["token"]
    assert await db.fetchval("SELECT count(*) FROM organization_invitations WHERE token_hash = $1", secret) == 0

    assert (await gql(MINE, token=stranger.token))["data"]["organizationInvitations"] == []
    mine = (await gql(MINE, token=rep.token))["data"]["organizationInvitations"]
    assert mine == [{"id": sent["id"], "organizationName": "Lagos Motors", "role": "ADMIN"}]
    stolen = await gql(ACCEPT, {"id": sent["id"], "token": secret}, token=stranger.token)  # addressed to someone else
    assert stolen["data"]["acceptOrganizationInvitation"]["userErrors"][0]["code"] == "NOT_FOUND"
    replaced = await gql(ACCEPT, {"id": sent["id"], "token": first["token"]}, token=rep.token)  # renewing replaced it
    assert replaced["data"]["acceptOrganizationInvitation"]["userErrors"][0]["code"] == "INVALID_INVITATION_TOKEN"

    joined = await gql(ACCEPT, {"id": sent["id"], "token": secret}, token=rep.token)
    assert joined["data"]["acceptOrganizationInvitation"]["organization"]["id"] == org.id
    assert await db.fetchval("SELECT org_role FROM users WHERE id = $1", rep.raw_id) == "admin"
    twice = await gql(ACCEPT, {"id": sent["id"], "token": secret}, token=rep.token)
    assert twice["data"]["acceptOrganizationInvitation"]["userErrors"][0]["code"] == "INVITATION_CLOSED"
    members = (await gql(MEMBERS, token=rep.token))["data"]["me"]["organization"]["members"]
    assert {e["node"]["id"] for e in members["edges"]} == {org.admin.id, rep.id} and members["totalCount"] == 2
    member_again = await gql(INVITE, {"email": rep.email}, token=org.admin.token)
    assert member_again["data"]["inviteToOrganization"]["userErrors"][0]["code"] == "ALREADY_MEMBER"

    # Expired and declined invitations cannot be used; one organization at a time.
    other = await make_organization("Abuja Autos", members=0)
    late = (await gql(INVITE, {"email": stranger.email}, token=other.admin.token))["data"]["inviteToOrganization"]
    await db.execute("UPDATE organization_invitations SET expires_at = $1 WHERE email = $2",  # a week on
                     clock.now - timedelta(seconds=1), stranger.email)
    expired = await gql(ACCEPT, {"id": late["invitation"]["id"], "token": late["token"]}, token=stranger.token)
    assert expired["data"]["acceptOrganizationInvitation"]["userErrors"][0]["code"] == "INVITATION_EXPIRED"
    poach = (await gql(INVITE, {"email": rep.email}, token=other.admin.token))["data"]["inviteToOrganization"]
    busy = await gql(ACCEPT, {"id": poach["invitation"]["id"], "token": poach["token"]}, token=rep.token)
    assert busy["data"]["acceptOrganizationInvitation"]["userErrors"][0]["code"] == "ALREADY_IN_ORGANIZATION"
    declined = await gql(DECLINE, {"id": poach["invitation"]["id"]}, token=rep.token)
    assert declined["data"]["declineOrganizationInvitation"]["invitation"]["status"] == "DECLINED"
    assert await db.fetchval("SELECT organization_id FROM users WHERE id = $1", rep.raw_id) == org.raw_id


async def test_registering_an_invited_address_is_not_enough_to_join(gql, make_organization, db):
    """An admin invites an unregistered address; whoever registers it cannot accept without the
    invitation's token (which only the admin was shown); with it, once."""
    org = await make_organization("Lagos Motors", members=0)
    email = "newcomer@example.com"
    invited = (await gql(INVITE, {"email": email, "role": "ADMIN"}, token=org.admin.token))["data"]["inviteToOrganization"]
    invitation_id, secret = invited["invitation"]["id"], invited["token"]
    assert await db.fetchval("SELECT token_hash FROM organization_invitations") != secret  # stored hashed

    registered = await gql(REGISTER, {"input": {"email": email, "password": PASSWORD}})
    squatter = registered["data"]["register"]["accessToken"]
    assert [i["id"] for i in (await gql(MINE, token=squatter))["data"]["organizationInvitations"]] == [invitation_id]
    missing = await gql("""mutation($id: ID!) { acceptOrganizationInvitation(input: {invitationId: $id}) {
        userErrors { code } } }""", {"id": invitation_id}, token=squatter)
    assert missing["errors"] and "token" in missing["errors"][0]["message"]  # required by the schema
    for guess in ("", "fc_inv_guess", secret + "x", secret[:-1]):
        wrong = await gql(ACCEPT, {"id": invitation_id, "token": guess}, token=squatter)
        assert wrong["data"]["acceptOrganizationInvitation"]["userErrors"] == [
            {"field": ["input", "token"], "code": "INVALID_INVITATION_TOKEN", "message": "This is not the invitation's token"}]
    assert await db.fetchval("SELECT organization_id FROM users WHERE email = $1", email) is None
    assert await db.fetchval("SELECT status FROM organization_invitations") == "pending"

    accepted = await gql(ACCEPT, {"id": invitation_id, "token": secret}, token=squatter)  # the owner, with the token
    assert accepted["data"]["acceptOrganizationInvitation"]["organization"]["id"] == org.id
    assert await db.fetchval("SELECT token_hash FROM organization_invitations") is None  # consumed
    assert (await gql(LEAVE, token=squatter))["data"]["leaveOrganization"]["userErrors"] == []
    again = await gql(ACCEPT, {"id": invitation_id, "token": secret}, token=squatter)
    assert again["data"]["acceptOrganizationInvitation"]["userErrors"][0]["code"] == "INVITATION_CLOSED"
    assert await db.fetchval("SELECT organization_id FROM users WHERE email = $1", email) is None


async def test_remove_and_leave_keep_an_admin(gql, make_organization, make_user, db):
    org = await make_organization(members=2)
    rep, other_rep = org.members
    rival = await make_organization("Rival", members=1)

    not_admin = await gql(REMOVE, {"id": other_rep.id}, token=rep.token)
    assert not_admin["data"]["removeOrganizationMember"]["userErrors"][0]["code"] == "NOT_ORGANIZATION_ADMIN"
    foreign = await gql(REMOVE, {"id": rival.members[0].id}, token=org.admin.token)
    assert foreign["data"]["removeOrganizationMember"]["userErrors"][0]["code"] == "NOT_FOUND"
    last_admin = await gql(LEAVE, token=org.admin.token)
    assert last_admin["data"]["leaveOrganization"]["userErrors"][0]["code"] == "LAST_ADMIN"

    await db.execute("INSERT INTO member_minute_limits (user_id, organization_id, limit_minutes) VALUES ($1, $2, 5)",
                     rep.raw_id, org.raw_id)
    removed = await gql(REMOVE, {"id": rep.id}, token=org.admin.token)
    assert removed["data"]["removeOrganizationMember"]["userErrors"] == []
    assert await db.fetchval("SELECT organization_id FROM users WHERE id = $1", rep.raw_id) is None
    assert await db.fetchval("SELECT count(*) FROM member_minute_limits") == 0
    assert await db.fetchval("SELECT action FROM admin_audit_log WHERE target_id = $1", rep.raw_id) == \
        "organization.remove_member"
    assert (await gql(MEMBERS, token=rep.token))["data"]["me"]["organization"] is None

    left = await gql(LEAVE, token=other_rep.token)
    assert left["data"]["leaveOrganization"]["userErrors"] == []
    alone = await gql(LEAVE, token=org.admin.token)  # the last person may leave
    assert alone["data"]["leaveOrganization"]["userErrors"] == []
    nothing = await gql(LEAVE, token=org.admin.token)
    assert nothing["data"]["leaveOrganization"]["userErrors"][0]["code"] == "NO_ORGANIZATION"
    assert to_global_id("Organization", org.raw_id) == org.id


def test_membership_rules():
    from datetime import UTC, datetime

    import pytest

    from forecourt.domain import organizations as rules
    from forecourt.domain.errors import DomainError

    now = datetime(2026, 11, 22, tzinfo=UTC)
    rules.check_invitation_open(rules.InvitationStatus.PENDING, now + timedelta(seconds=1), now)
    for status, expires, code in [(rules.InvitationStatus.PENDING, now, "INVITATION_EXPIRED"),
                                  (rules.InvitationStatus.DECLINED, now + rules.INVITATION_TTL, "INVITATION_CLOSED")]:
        with pytest.raises(DomainError) as err:
            rules.check_invitation_open(status, expires, now)
        assert err.value.code == code
    rules.check_keeps_an_admin("admin", admins=2, members=3)
    rules.check_keeps_an_admin("admin", admins=1, members=1)  # the last person may go
    rules.check_keeps_an_admin("member", admins=1, members=3)
    with pytest.raises(DomainError):
        rules.check_keeps_an_admin("admin", admins=1, members=2)
