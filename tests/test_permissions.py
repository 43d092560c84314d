"""The permission matrix, walked: every actor against every operation."""

import uuid

import pytest

from forecourt.auth.errors import Forbidden, Unauthenticated
from forecourt.auth.matrix import GUEST, PERMISSIONS, SESSION_ONLY
from forecourt.auth.permissions import Allowed, check_operation
from forecourt.auth.principal import READ, Principal
from forecourt.config import Settings
from forecourt.domain.identity import KycStatus, Role
from forecourt.schema.root import build_schema, root_operations
from tests.test_identity import DEALER, KYC

ACTORS = [GUEST, *Role]


def sample(operation: str) -> tuple[str, dict]:
    """A well-formed call of each operation; what it does is beside the point here."""
    email = f"walk-{uuid.uuid4().hex[:8]}@example.com"
    return {
        "Query.node": ('{ node(id: "VXNlcjox") { id } }', {}),
        "Query.me": ("{ me { id } }", {}),
        "Query.kycApplications": ("{ kycApplications { totalCount } }", {}),
        "Mutation.register": (
            "mutation($i: RegisterInput!) { register(input: $i) { userErrors { code } } }",
            {"i": {"email": email, "password": "Passw0rdX"}},
        ),
        "Mutation.login": (
            "mutation($i: LoginInput!) { login(input: $i) { userErrors { code } } }",
            {"i": {"email": email, "password": "Passw0rdX"}},
        ),
        "Mutation.refreshToken": ('mutation { refreshToken(token: "fc_rt_x") { userErrors { code } } }', {}),
        "Mutation.changePassword": (
            'mutation { changePassword(input: {currentPassword: "wrong", newPassword: "x"}) { userErrors { code } } }',
            {}),
        "Mutation.logout": ('mutation { logout(input: {refreshToken: "fc_rt_x"}) { userErrors { code } } }', {}),
        "Mutation.logoutEverywhere": ("mutation { logoutEverywhere { userErrors { code } } }", {}),
        "Mutation.createApiToken": ('mutation { createApiToken(input: {name: "t"}) { userErrors { code } } }', {}),
        "Mutation.revokeApiToken": ('mutation { revokeApiToken(id: "eA") { userErrors { code } } }', {}),
        "Mutation.createOrganization": (
            'mutation { createOrganization(input: {name: "Org"}) { userErrors { code } } }', {}
        ),
        "Mutation.startPlanCheckout": (
            'mutation { startPlanCheckout(input: {plan: PRO, successUrl: "https://a.example/ok", '
            'cancelUrl: "https://a.example/no"}) { userErrors { code } } }', {}),
        "Mutation.openBillingPortal": (
            'mutation { openBillingPortal(input: {returnUrl: "https://a.example/"}) { userErrors { code } } }', {}),
        "Mutation.setMinuteQuota": (
            'mutation { setMinuteQuota(input: {organizationId: "eA", totalMinutes: 1}) { userErrors { code } } }', {}),
        "Mutation.submitKyc": (
            "mutation($i: SubmitKycInput!) { submitKyc(input: $i) { userErrors { code } } }", {"i": KYC}
        ),
        "Mutation.applyForDealer": (
            "mutation($i: ApplyForDealerInput!) { applyForDealer(input: $i) { userErrors { code } } }",
            {"i": DEALER},
        ),
        "Query.vehicles": ("{ vehicles { totalCount } }", {}),
        "Query.valuation": ('{ valuation(input: {make: "A", model: "B", year: 2020}) { asOf } }', {}),
        "Query.vehicle": ('{ vehicle(id: "eA") { id } }', {}),
        "Query.vehicleByVin": ('{ vehicleByVin(vin: "JTDBE32K020123456") { id } }', {}),
        "Mutation.createVehicle": (
            "mutation($i: CreateVehicleInput!) { createVehicle(input: $i) { userErrors { code } } }",
            {"i": {"vin": uuid.uuid4().hex[:17].upper().replace("O", "0"), "year": 2020, "make": "Kia",
                   "model": "Rio", "condition": "CLEAN"}},
        ),
        "Mutation.importVehicles": (
            "mutation($i: ImportVehiclesInput!) { importVehicles(input: $i) { userErrors { code } } }",
            {"i": {"rows": [], "dryRun": True}},
        ),
        "Query.auctions": ("{ auctions { totalCount } }", {}),
        "Query.auction": ('{ auction(id: "eA") { id } }', {}),
        "Mutation.createAuction": (
            "mutation($i: CreateAuctionInput!) { createAuction(input: $i) { userErrors { code } } }",
            {"i": {"vehicleId": "eA", "startPrice": "1.00", "startTime": "2030-01-01T00:00:00Z",
                   "endTime": "2030-01-02T00:00:00Z"}},
        ),
        "Mutation.placeBid": ('mutation { placeBid(input: {auctionId: "eA", amount: "1.00"}) { userErrors { code } } }', {}),
        "Mutation.cancelAuction": (
            'mutation { cancelAuction(input: {auctionId: "eA", reason: "r"}) { userErrors { code } } }', {}),
        "Mutation.settleAuction": ('mutation { settleAuction(input: {auctionId: "eA"}) { userErrors { code } } }', {}),
        "Mutation.declineOffer": ('mutation { declineOffer(input: {auctionId: "eA"}) { userErrors { code } } }', {}),
        "Mutation.fundWallet": ('mutation { fundWallet(input: {amount: "1.00"}) { userErrors { code } } }', {}),
        "Mutation.adjustWallet": (
            'mutation { adjustWallet(input: {userId: "eA", amount: "1.00", reason: "r"}) { userErrors { code } } }', {}),
        "Query.organizationInvitations": ("{ organizationInvitations { id } }", {}),
        "Mutation.inviteToOrganization": (
            'mutation { inviteToOrganization(input: {email: "x@example.com"}) { userErrors { code } } }', {}),
        "Mutation.acceptOrganizationInvitation": (
            'mutation { acceptOrganizationInvitation(input: {invitationId: "eA", token: "t"}) { userErrors { code } } }', {}),
        "Mutation.declineOrganizationInvitation": (
            'mutation { declineOrganizationInvitation(input: {invitationId: "eA"}) { userErrors { code } } }', {}),
        "Mutation.removeOrganizationMember": (
            'mutation { removeOrganizationMember(input: {userId: "eA"}) { userErrors { code } } }', {}),
        "Mutation.leaveOrganization": ("mutation { leaveOrganization { userErrors { code } } }", {}),
        "Query.scenarios": ("{ scenarios { totalCount } }", {}),
        "Query.trainingSession": ('{ trainingSession(id: "eA") { id } }', {}),
        "Query.trainingSessions": ("{ trainingSessions { totalCount } }", {}),
        "Query.trainingProgress": ("{ trainingProgress { totalSessions } }", {}),
        "Query.leaderboard": ("{ leaderboard { averageScore } }", {}),
        "Mutation.createScenario": (
            'mutation { createScenario(input: {name: "n", description: "d", difficulty: 1, personaId: "eA", '
            'preset: RETAIL}) { userErrors { code } } }', {}),
        "Mutation.createBuyerPersona": (
            'mutation { createBuyerPersona(input: {type: "t", personality: "p"}) { userErrors { code } } }', {}),
        "Mutation.createTrainingProduct": (
            'mutation { createTrainingProduct(input: {name: "n"}) { userErrors { code } } }', {}),
        "Mutation.startTrainingSession": (
            'mutation { startTrainingSession(input: {scenarioId: "eA"}) { userErrors { code } } }', {}),
        "Mutation.appendTranscript": (
            'mutation { appendTranscript(input: {sessionId: "eA", role: "trainee", text: "hi"}) '
            '{ userErrors { code } } }', {}),
        "Mutation.completeTrainingSession": (
            'mutation { completeTrainingSession(input: {sessionId: "eA"}) { userErrors { code } } }', {}),
        "Mutation.cancelTrainingSession": (
            'mutation { cancelTrainingSession(input: {sessionId: "eA"}) { userErrors { code } } }', {}),
        "Mutation.setMemberMinuteLimit": (
            'mutation { setMemberMinuteLimit(input: {userId: "eA", minutes: 5}) { userErrors { code } } }', {}),
        "Query.memberMinuteLimits": ("{ memberMinuteLimits { totalCount } }", {}),
        "Mutation.createVoiceSession": ('mutation { createVoiceSession(sessionId: "eA") { userErrors { code } } }', {}),
        "Mutation.overrideTrainingScore": (
            'mutation { overrideTrainingScore(input: {sessionId: "eA", score: 1, reason: "r"}) '
            '{ userErrors { code } } }', {}),
        "Mutation.reviewKycApplication": (
            'mutation { reviewKycApplication(input: {userId: "VXNlcjox", approve: true}) { userErrors { code } } }',
            {},
        ),
    }[operation]


# Last in the walk: it ends the sessions of the actors that may run it.
ENDS_SESSIONS = "Mutation.logoutEverywhere"
HTTP_OPERATIONS = sorted((op for op in PERMISSIONS if not op.startswith("Subscription.")),
                         key=lambda op: op == ENDS_SESSIONS)


def test_every_root_field_is_in_the_matrix_and_guarded():
    schema = build_schema(Settings(FORECOURT_ENV="test"))
    operations = root_operations(schema)
    assert set(operations) == set(PERMISSIONS)
    assert all(Allowed in classes for classes in operations.values())


def test_every_operation_has_a_sample():
    for operation in HTTP_OPERATIONS:
        assert sample(operation)


async def test_walk_every_actor_against_every_operation(gql, make_user):
    tokens = {GUEST: None}
    for role in Role:
        tokens[role] = (await make_user(role.value)).token
    mismatches = []
    for operation in HTTP_OPERATIONS:
        for actor in ACTORS:
            query, variables = sample(operation)
            body = await gql(query, variables, token=tokens[actor])
            codes = {e.get("extensions", {}).get("code") for e in body.get("errors", [])}
            denied = bool(codes & {"UNAUTHENTICATED", "FORBIDDEN"})
            expected_denied = actor not in PERMISSIONS[operation]
            if denied != expected_denied:
                mismatches.append((operation, str(actor), codes))
            if expected_denied:
                want = "UNAUTHENTICATED" if actor == GUEST else "FORBIDDEN"
                if want not in codes:
                    mismatches.append((operation, str(actor), codes, "wanted " + want))
    assert mismatches == []


@pytest.mark.parametrize("operation", sorted(PERMISSIONS))
@pytest.mark.parametrize("actor", ACTORS, ids=str)
def test_check_operation_matches_the_matrix(operation, actor):
    principal = None if actor == GUEST else Principal(uuid.uuid4(), actor, KycStatus.NONE)
    allowed = actor in PERMISSIONS[operation]
    if allowed:
        check_operation(operation, principal)
    else:
        with pytest.raises(Unauthenticated if actor == GUEST else Forbidden):
            check_operation(operation, principal)


def test_api_token_scopes_and_session_only_operations():
    read_only = Principal(uuid.uuid4(), Role.ADMIN, KycStatus.NONE, api_token_id=uuid.uuid4(),
                          scopes=frozenset({READ}))
    check_operation("Query.me", read_only)
    with pytest.raises(Forbidden):
        check_operation("Mutation.createOrganization", read_only)
    full = Principal(uuid.uuid4(), Role.ADMIN, KycStatus.NONE, api_token_id=uuid.uuid4())
    for operation in SESSION_ONLY:
        with pytest.raises(Forbidden):
            check_operation(operation, full)
