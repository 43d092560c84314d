"""Auctions through the real API: creating, bidding (buying power, proxies, idempotency,
anti-sniping), closing, settlement and its deadline, reserve protection, and the ledger."""

import asyncio
import uuid
from datetime import timedelta, timezone
from decimal import Decimal as D

import asyncpg
import pytest

from forecourt import jobs
from forecourt.schema.relay import to_global_id
from tests.conftest import PASSWORD, fund
from tests.test_catalog import create as create_vehicle

AUCTION_FIELDS = """id status startPrice reservePrice reserveMet currentPrice bidIncrement minimumNextBid
  depositPercent reserveProtection startTime endTime originalEndTime bidCount bidderCount sequence
  isLeading winningAmount winner { id } vehicle { id status activeAuction { id } }"""
CREATE = f"""mutation($input: CreateAuctionInput!) {{ createAuction(input: $input) {{
  auction {{ {AUCTION_FIELDS} }} userErrors {{ field code message }} }} }}"""
BID = f"""mutation($input: PlaceBidInput!) {{ placeBid(input: $input) {{
  bid {{ id amount isProxy isPlatformBid bidder {{ id }} }} auction {{ {AUCTION_FIELDS} }}
  userErrors {{ field code message }} }} }}"""
AUCTION = f"""query($id: ID!) {{ auction(id: $id) {{ {AUCTION_FIELDS}
  bids(first: 50) {{ totalCount edges {{ node {{ amount isProxy isPlatformBid bidder {{ id }} }} }} }} }} }}"""
SETTLE = """mutation($id: ID!) { settleAuction(input: {auctionId: $id}) {
  auction { status } userErrors { code message } } }"""
CANCEL = """mutation($id: ID!, $reason: String!) { cancelAuction(input: {auctionId: $id, reason: $reason}) {
  auction { status } userErrors { code message } } }"""
WALLET = """query { me { wallet { balance held available buyingPower committed
  transactions(first: 20) { totalCount edges { node { type amount balanceAfter status } } } } } }"""


@pytest.fixture
async def bidder(make_user, db):
    async def make(funds="10000000"):
        account = await make_user("user", kyc="approved")
        await fund(db, account, funds)
        return account
    return make


async def new_auction(gql, seller, clock, *, start=None, hours=2, **over):
    vehicle = (await create_vehicle(gql, seller))["vehicle"]
    start = start or clock.now
    body = await gql(CREATE, {"input": {
        "vehicleId": vehicle["id"], "startPrice": "1000000.00", "bidIncrement": "50000.00",
        "startTime": start.isoformat(), "endTime": (start + timedelta(hours=hours)).isoformat(), **over}},
        token=seller.token)
    payload = body["data"]["createAuction"]
    assert payload["userErrors"] == [], payload
    return payload["auction"]


async def place(gql, account, auction, amount, **extra):
    body = await gql(BID, {"input": {"auctionId": auction["id"], "amount": amount, **extra}}, token=account.token)
    return body["data"]["placeBid"]


async def get(gql, auction, token=None):
    return (await gql(AUCTION, {"id": auction["id"]}, token=token))["data"]["auction"]


async def run_jobs(server):
    return await server.call(jobs.run_auctions, server.app.state.forecourt)


async def test_seller_creates_an_auction_for_their_vehicle(gql, seller, clock, db, make_user):
    auction = await new_auction(gql, seller, clock, reservePrice="2000000.00")
    assert auction["status"] == "LIVE" and auction["currentPrice"] == "1000000.00"
    assert auction["minimumNextBid"] == "1000000.00" and auction["reserveMet"] is False
    assert auction["reservePrice"] == "2000000.00"  # the seller sees it
    assert auction["vehicle"]["status"] == "IN_AUCTION"
    assert auction["vehicle"]["activeAuction"]["id"] == auction["id"]
    viewer = await make_user("user")
    assert (await get(gql, auction, viewer.token))["reservePrice"] is None  # bidders do not
    # one active auction per vehicle
    again = await gql(CREATE, {"input": {
        "vehicleId": auction["vehicle"]["id"], "startPrice": "5.00", "startTime": clock.now.isoformat(),
        "endTime": (clock.now + timedelta(hours=1)).isoformat()}}, token=seller.token)
    assert again["data"]["createAuction"]["userErrors"][0]["code"] == "VEHICLE_NOT_AVAILABLE"
    # another dealer's vehicle
    other = await make_user("dealer")
    body = await gql(CREATE, {"input": {
        "vehicleId": (await create_vehicle(gql, seller))["vehicle"]["id"], "startPrice": "5.00",
        "startTime": clock.now.isoformat(), "endTime": (clock.now + timedelta(hours=1)).isoformat()}},
        token=other.token)
    assert body["data"]["createAuction"]["userErrors"][0]["code"] == "NOT_YOUR_VEHICLE"
    assert await db.fetchval("SELECT count(*) FROM auctions") == 1


async def test_a_concierge_sees_neither_the_reserve_nor_the_bidders(gql, seller, clock, bidder, make_user):
    auction = await new_auction(gql, seller, clock, reservePrice="2000000.00")
    alice = await bidder()
    assert (await place(gql, alice, auction, "1000000.00"))["userErrors"] == []
    concierge, manager = await make_user("concierge"), await make_user("manager")
    seen = await get(gql, auction, concierge.token)
    assert seen["reservePrice"] is None
    assert [e["node"]["bidder"] for e in seen["bids"]["edges"]] == [None]
    staff = await get(gql, auction, manager.token)  # staff do
    assert staff["reservePrice"] == "2000000.00"
    assert [e["node"]["bidder"]["id"] for e in staff["bids"]["edges"]] == [alice.id]
    refused = await gql(CANCEL, {"id": auction["id"], "reason": "r"}, token=concierge.token)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("over, code", [
    ({"startPrice": "0.00"}, "INVALID_PRICE"),
    ({"reservePrice": "10.00"}, "INVALID_RESERVE"),
    ({"bidIncrement": "-5.00"}, "INVALID_INCREMENT"),
    ({"endTime": "2020-01-01T00:00:00+00:00"}, "INVALID_SCHEDULE"),
    ({"reserveProtection": True}, "RESERVE_REQUIRED"),
])
async def test_bad_auction_terms_write_nothing(over, code, gql, seller, clock, db):
    vehicle = (await create_vehicle(gql, seller))["vehicle"]
    body = await gql(CREATE, {"input": {
        "vehicleId": vehicle["id"], "startPrice": "1000000.00", "startTime": clock.now.isoformat(),
        "endTime": (clock.now + timedelta(hours=1)).isoformat(), **over}}, token=seller.token)
    assert code in {e["code"] for e in body["data"]["createAuction"]["userErrors"]}
    assert await db.fetchval("SELECT count(*) FROM auctions") == 0
    assert await db.fetchval("SELECT status FROM vehicles") == "available"


@pytest.mark.parametrize("start", ["2026-01-01", "2026-01-01T09:00:00", "9999-12-31T23:59:59-01:00", "soon"])
async def test_a_time_without_an_offset_is_refused_not_a_crash(start, gql, seller, clock, db):
    """Found by test_fuzz_graphql: a naive startTime reached the domain's comparison with the
    clock (TypeError, a masked INTERNAL error). As a variable and as an inline literal."""
    vehicle = (await create_vehicle(gql, seller))["vehicle"]
    end = (clock.now + timedelta(hours=1)).isoformat()
    as_variable = await gql(CREATE, {"input": {
        "vehicleId": vehicle["id"], "startPrice": "1000000.00", "startTime": start, "endTime": end}},
        token=seller.token)
    inline = await gql(f"""mutation {{ createAuction(input: {{vehicleId: "{vehicle['id']}", startPrice: "1.00",
        startTime: "{start}", endTime: "{end}"}}) {{ auction {{ id }} }} }}""", token=seller.token)
    for body in (as_variable, inline):
        assert body["status"] < 500 and body.get("data") is None, body
        [error] = body["errors"]
        assert error["extensions"]["code"] in ("BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"), body
        assert "DateTime" in error["message"] or "ISO 8601" in error["message"], body
    assert await db.fetchval("SELECT count(*) FROM auctions") == 0


async def test_a_start_time_with_an_offset_is_the_same_instant_in_utc(gql, seller, clock):
    start = clock.now.astimezone(timezone(timedelta(hours=1)))
    auction = await new_auction(gql, seller, clock, start=start)
    assert auction["status"] == "LIVE"
    assert auction["startTime"] == clock.now.isoformat()


async def test_bidding_rules(gql, seller, clock, bidder, make_user, db):
    auction = await new_auction(gql, seller, clock)
    alice, bob = await bidder(), await bidder()
    first = await place(gql, alice, auction, "1000000.00")
    assert first["userErrors"] == []
    assert first["auction"]["currentPrice"] == "1000000.00" and first["auction"]["isLeading"] is True
    assert first["bid"]["bidder"]["id"] == alice.id
    low = await place(gql, bob, auction, "1040000.00")
    assert low["userErrors"][0]["code"] == "BID_TOO_LOW" and low["userErrors"][0]["field"] == ["input", "amount"]
    assert (await place(gql, seller, auction, "2000000.00"))["userErrors"][0]["code"] == "OWN_AUCTION"
    no_kyc = await make_user("user")
    await fund(db, no_kyc, "10000000")
    assert (await place(gql, no_kyc, auction, "2000000.00"))["userErrors"][0]["code"] == "KYC_REQUIRED"
    poor = await bidder(funds="100000")
    too_poor = (await place(gql, poor, auction, "2000000.00"))["userErrors"][0]
    assert too_poor["code"] == "INSUFFICIENT_FUNDS" and too_poor["field"] == ["input", "amount"]
    second = await place(gql, bob, auction, "1050000.00")
    assert second["auction"]["bidCount"] == 2 and second["auction"]["bidderCount"] == 2
    assert second["auction"]["minimumNextBid"] == "1100000.00" and second["auction"]["sequence"] == 2
    # bidders see only their own identity on bids; the seller sees everyone
    seen_by_bob = await get(gql, auction, bob.token)
    assert [e["node"]["bidder"] for e in seen_by_bob["bids"]["edges"]] == [{"id": bob.id}, None]
    seen_by_seller = await get(gql, auction, seller.token)
    assert [e["node"]["bidder"]["id"] for e in seen_by_seller["bids"]["edges"]] == [bob.id, alice.id]
    # the refused bids wrote nothing
    assert await db.fetchval("SELECT count(*) FROM bids") == 2
    assert await db.fetchval("SELECT count(*) FROM auction_events") == 2


async def test_buying_power_counts_winning_bids_on_other_auctions(gql, seller, clock, bidder):
    one, two = await new_auction(gql, seller, clock), await new_auction(gql, seller, clock)
    alice = await bidder(funds="400000")  # 20% covers 2,000,000 of winning bids
    assert (await place(gql, alice, one, "1000000.00"))["userErrors"] == []
    assert (await place(gql, alice, two, "1000000.00"))["userErrors"] == []
    refused = await place(gql, alice, two, "1050000.00")  # would make it 2,050,000
    assert refused["userErrors"][0]["code"] == "INSUFFICIENT_FUNDS"
    me = (await gql(WALLET, token=alice.token))["data"]["me"]["wallet"]
    assert me["committed"] == "2000000.00" and me["buyingPower"] == "0.00"
    # once outbid on one, the money is free again
    bob = await bidder()
    await place(gql, bob, one, "1050000.00")
    assert (await place(gql, alice, two, "1050000.00"))["userErrors"] == []


async def test_concurrent_bids_by_one_bidder_never_overcommit_the_wallet(gql, seller, clock, bidder):
    auctions = [await new_auction(gql, seller, clock) for _ in range(6)]
    alice = await bidder(funds="600000")  # enough for 3 of the 6 at 1,000,000
    results = await asyncio.gather(*(place(gql, alice, a, "1000000.00") for a in auctions))
    accepted = [r for r in results if not r["userErrors"]]
    assert len(accepted) == 3
    assert {r["userErrors"][0]["code"] for r in results if r["userErrors"]} == {"INSUFFICIENT_FUNDS"}


async def test_idempotency_key_makes_a_retry_count_once(gql, seller, clock, bidder, db):
    auction = await new_auction(gql, seller, clock)
    alice = await bidder()
    first, again = await asyncio.gather(
        place(gql, alice, auction, "1000000.00", idempotencyKey="k-1"),
        place(gql, alice, auction, "1000000.00", idempotencyKey="k-1"))
    assert first["bid"]["id"] == again["bid"]["id"]
    retry = await place(gql, alice, auction, "1000000.00", idempotencyKey="k-1")
    assert retry["bid"]["id"] == first["bid"]["id"]
    assert retry["auction"]["bidCount"] == 1
    reused = await place(gql, alice, auction, "1500000.00", idempotencyKey="k-1")
    assert reused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await db.fetchval("SELECT count(*) FROM bids") == 1


async def test_proxy_bids_are_ordinary_bids_and_events(gql, seller, clock, bidder):
    auction = await new_auction(gql, seller, clock)
    alice, bob = await bidder(), await bidder()
    await place(gql, alice, auction, "1000000.00", maxAmount="1500000.00")
    out = await place(gql, bob, auction, "1200000.00")
    assert out["userErrors"] == [] and out["auction"]["isLeading"] is False
    assert out["auction"]["currentPrice"] == "1250000.00" and out["auction"]["sequence"] == 3
    state = await get(gql, auction, seller.token)
    assert [(e["node"]["amount"], e["node"]["isProxy"]) for e in state["bids"]["edges"]] == [
        ("1250000.00", True), ("1200000.00", False), ("1000000.00", False)]


async def test_anti_sniping_extends_and_keeps_the_original_end(gql, seller, clock, bidder):
    auction = await new_auction(gql, seller, clock, hours=1)
    alice = await bidder()
    clock.advance(minutes=59)
    out = await place(gql, alice, auction, "1000000.00")
    assert out["auction"]["originalEndTime"] == auction["endTime"]
    assert out["auction"]["endTime"] != auction["endTime"] and out["auction"]["sequence"] == 2
    clock.advance(minutes=2)  # past the original end, within the extension
    assert (await place(gql, alice, auction, "1050000.00"))["userErrors"] == []
    clock.advance(minutes=10)
    late = await place(gql, alice, auction, "2000000.00")
    assert late["userErrors"][0]["code"] == "AUCTION_ENDED"


async def test_scheduled_auction_goes_live_then_closes_with_a_winner_and_a_deposit(
        gql, seller, clock, bidder, server, db):
    auction = await new_auction(gql, seller, clock, start=clock.now + timedelta(hours=1))
    assert auction["status"] == "SCHEDULED"
    alice, bob = await bidder(), await bidder()
    assert (await place(gql, alice, auction, "1000000.00"))["userErrors"][0]["code"] == "AUCTION_NOT_LIVE"
    clock.advance(hours=1)
    assert (await run_jobs(server))["started"] == 1
    await place(gql, alice, auction, "1000000.00")
    await place(gql, bob, auction, "1500000.00")
    clock.advance(hours=2, seconds=1)
    assert (await run_jobs(server))["closed"] == 1
    assert (await run_jobs(server))["closed"] == 0  # exactly once
    closed = await get(gql, auction, seller.token)
    assert closed["status"] == "PENDING_SETTLEMENT" and closed["winner"]["id"] == bob.id
    assert closed["winningAmount"] == "1500000.00" and closed["vehicle"]["status"] == "PENDING_SETTLEMENT"
    assert closed["vehicle"]["activeAuction"]["id"] == auction["id"]
    wallet = (await gql(WALLET, token=bob.token))["data"]["me"]["wallet"]
    assert wallet["held"] == "300000.00" and wallet["available"] == "9700000.00"
    assert wallet["transactions"]["edges"][0]["node"]["type"] == "bid_deposit_hold"
    # the winner pays: deposit applied, seller credited, vehicle moves to settlement
    settled = await gql(SETTLE, {"id": auction["id"]}, token=bob.token)
    assert settled["data"]["settleAuction"] == {"auction": {"status": "SETTLED"}, "userErrors": []}
    wallet = (await gql(WALLET, token=bob.token))["data"]["me"]["wallet"]
    assert wallet["balance"] == "8500000.00" and wallet["held"] == "0.00"
    seller_wallet = (await gql(WALLET, token=seller.token))["data"]["me"]["wallet"]
    assert seller_wallet["balance"] == "1500000.00"
    assert await db.fetchval("SELECT status FROM vehicles WHERE id = (SELECT vehicle_id FROM auctions)") == "in_settlement"
    types = [r["type"] for r in await db.fetch("SELECT type FROM auction_events ORDER BY sequence")]
    assert types == ["BID_PLACED", "BID_PLACED", "ENDED", "SETTLEMENT_STARTED", "SETTLED"]


async def test_no_bid_meeting_the_reserve_leaves_it_unsold_and_relistable(gql, seller, clock, bidder, server):
    auction = await new_auction(gql, seller, clock, reservePrice="5000000.00")
    await place(gql, await bidder(), auction, "1000000.00")
    clock.advance(hours=3)
    await run_jobs(server)
    closed = await get(gql, auction, seller.token)
    assert closed["status"] == "UNSOLD" and closed["winner"] is None
    assert closed["vehicle"]["status"] == "AVAILABLE" and closed["vehicle"]["activeAuction"] is None
    again = await gql(CREATE, {"input": {
        "vehicleId": closed["vehicle"]["id"], "startPrice": "900000.00", "startTime": clock.now.isoformat(),
        "endTime": (clock.now + timedelta(hours=1)).isoformat()}}, token=seller.token)
    assert again["data"]["createAuction"]["userErrors"] == []
    assert (await get(gql, auction, seller.token))["status"] == "RELISTED"


async def test_settlement_deadline_forfeits_the_deposit_and_offers_the_next_bidder(
        gql, seller, clock, bidder, server, db, make_user):
    auction = await new_auction(gql, seller, clock)
    alice, bob = await bidder(), await bidder()
    await place(gql, alice, auction, "1000000.00")
    await place(gql, bob, auction, "2000000.00")
    clock.advance(hours=2, seconds=1)
    await run_jobs(server)
    clock.advance(hours=24, seconds=1)
    assert (await run_jobs(server))["expired"] == 1
    staff = await make_user("admin")  # tokens issued before the jump have expired
    after = await get(gql, auction, staff.token)
    assert after["status"] == "PENDING_SETTLEMENT" and after["winner"]["id"] == alice.id
    assert after["winningAmount"] == "1000000.00"
    wallets = "SELECT balance, held FROM wallets WHERE user_id = $1"
    assert tuple(await db.fetchrow(wallets, bob.raw_id)) == (D("9600000.00"), D("0.00"))  # 400k forfeited
    assert tuple(await db.fetchrow(wallets, alice.raw_id)) == (D("10000000.00"), D("200000.00"))
    bob_again = await gql("mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }",
                          {"e": bob.email, "p": PASSWORD})
    late = await gql(SETTLE, {"id": auction["id"]}, token=bob_again["data"]["login"]["accessToken"])
    assert late["data"]["settleAuction"]["userErrors"][0]["code"] == "NOT_YOUR_SETTLEMENT"
    clock.advance(hours=24, seconds=1)
    await run_jobs(server)
    final = await get(gql, auction)
    assert final["status"] == "UNSOLD" and final["vehicle"]["status"] == "AVAILABLE"
    # alice was offered the vehicle, not its winner: letting the offer lapse cost her nothing
    assert tuple(await db.fetchrow(wallets, alice.raw_id)) == (D("10000000.00"), D("0.00"))
    for account in (alice, bob):
        await assert_ledger_matches(db, account.raw_id)


DECLINE = """mutation($id: ID!) { declineOffer(input: {auctionId: $id}) {
  auction { status winner { id } winningAmount } userErrors { code message } } }"""


async def login(gql, account) -> str:
    body = await gql("mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }",
                     {"e": account.email, "p": PASSWORD})
    return body["data"]["login"]["accessToken"]


async def test_an_offered_bidder_can_decline_and_the_offer_moves_on(gql, seller, clock, bidder, server, db):
    auction = await new_auction(gql, seller, clock)
    alice, carol, bob = await bidder(), await bidder(), await bidder()
    for account, amount in ((alice, "1000000.00"), (carol, "1500000.00"), (bob, "2000000.00")):
        assert (await place(gql, account, auction, amount))["userErrors"] == []
    clock.advance(hours=2, seconds=1)
    await run_jobs(server)
    bound = (await gql(DECLINE, {"id": auction["id"]}, token=await login(gql, bob)))["data"]["declineOffer"]
    assert bound["userErrors"][0]["code"] == "NOT_AN_OFFER"  # the winner must pay or forfeit
    clock.advance(hours=24, seconds=1)
    await run_jobs(server)  # bob forfeits; carol is offered it
    wallets = "SELECT balance, held FROM wallets WHERE user_id = $1"
    assert tuple(await db.fetchrow(wallets, carol.raw_id)) == (D("10000000.00"), D("300000.00"))
    not_his = (await gql(DECLINE, {"id": auction["id"]}, token=await login(gql, bob)))["data"]["declineOffer"]
    assert not_his["userErrors"][0]["code"] == "NOT_YOUR_OFFER"

    declined = (await gql(DECLINE, {"id": auction["id"]}, token=await login(gql, carol)))["data"]["declineOffer"]
    assert declined["userErrors"] == []
    assert declined["auction"]["status"] == "PENDING_SETTLEMENT"
    assert declined["auction"]["winningAmount"] == "1000000.00"
    assert tuple(await db.fetchrow(wallets, carol.raw_id)) == (D("10000000.00"), D("0.00"))  # released
    assert tuple(await db.fetchrow(wallets, alice.raw_id)) == (D("10000000.00"), D("200000.00"))
    again = (await gql(DECLINE, {"id": auction["id"]}, token=await login(gql, carol)))["data"]["declineOffer"]
    assert again["userErrors"][0]["code"] == "NOT_YOUR_OFFER"

    last = (await gql(DECLINE, {"id": auction["id"]}, token=await login(gql, alice)))["data"]["declineOffer"]
    assert last["userErrors"] == [] and last["auction"]["status"] == "UNSOLD"
    assert (await get(gql, auction))["vehicle"]["status"] == "AVAILABLE"
    assert tuple(await db.fetchrow(wallets, alice.raw_id)) == (D("10000000.00"), D("0.00"))
    assert tuple(await db.fetchrow(wallets, bob.raw_id)) == (D("9600000.00"), D("0.00"))  # 400k forfeited
    sequence = await db.fetchval("SELECT sequence FROM auctions")
    types = [r["type"] for r in await db.fetch("SELECT type FROM auction_events ORDER BY sequence")]
    assert len(types) == sequence and types[-3:] == ["SETTLEMENT_STARTED", "SETTLEMENT_STARTED", "ENDED"]
    for account in (alice, carol, bob):
        await assert_ledger_matches(db, account.raw_id)


async def test_reserve_protection_bids_are_disclosed_and_capped(gql, seller, clock, bidder, server):
    auction = await new_auction(gql, seller, clock, reservePrice="2000000.00", reserveProtection=True)
    assert auction["reserveProtection"] is True
    await place(gql, await bidder(), auction, "1000000.00")
    state = server.app.state.forecourt
    assert await server.call(jobs.protect_reserves, state) == 0  # more than an hour left
    clock.advance(minutes=70)
    assert await server.call(jobs.protect_reserves, state) == 1
    assert await server.call(jobs.protect_reserves, state) == 0  # it leads; never bids against itself
    after = await get(gql, auction, seller.token)
    top = after["bids"]["edges"][0]["node"]
    assert top == {"amount": "1050000.00", "isProxy": False, "isPlatformBid": True, "bidder": None}
    # the platform never bids past 95% of the reserve, and a platform lead never wins
    clock.advance(minutes=40)
    await run_jobs(server)
    assert (await get(gql, auction, seller.token))["status"] == "LIVE"
    clock.advance(minutes=15)
    await run_jobs(server)
    assert (await get(gql, auction, seller.token))["status"] == "UNSOLD"


async def test_cancel_before_bids_by_the_seller(gql, seller, clock, bidder, make_user):
    auction = await new_auction(gql, seller, clock)
    body = await gql(CANCEL, {"id": auction["id"], "reason": "Sold privately"}, token=seller.token)
    assert body["data"]["cancelAuction"] == {"auction": {"status": "CANCELLED"}, "userErrors": []}
    assert (await get(gql, auction))["vehicle"]["status"] == "AVAILABLE"
    other = await new_auction(gql, seller, clock)
    await place(gql, await bidder(), other, "1000000.00")
    refused = await gql(CANCEL, {"id": other["id"], "reason": "changed my mind"}, token=seller.token)
    assert refused["data"]["cancelAuction"]["userErrors"][0]["code"] == "HAS_BIDS"
    admin = await make_user("admin")
    forced = await gql(CANCEL, {"id": other["id"], "reason": "fraud report"}, token=admin.token)
    assert forced["data"]["cancelAuction"]["auction"]["status"] == "CANCELLED"


async def assert_ledger_matches(db, user_id):
    balance, held = await db.fetchrow("SELECT balance, held FROM wallets WHERE user_id = $1", user_id)
    sums = await db.fetchrow("SELECT sum(balance_delta) b, sum(held_delta) h FROM transactions "
                             "WHERE user_id = $1 AND status = 'completed'", user_id)
    assert (balance, held) == (sums["b"], sums["h"])
    assert balance >= 0 and 0 <= held <= balance


async def test_ledger_is_append_only_and_balances_move_only_with_it(db, make_user):
    account = await make_user("user")
    await fund(db, account, "1000")
    with pytest.raises(asyncpg.PostgresError, match="only through the ledger"):
        await db.execute("UPDATE wallets SET balance = 1000000 WHERE user_id = $1", account.raw_id)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("UPDATE transactions SET amount = 5")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("DELETE FROM transactions")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO transactions (id, user_id, type, amount, balance_delta, held_delta, created_at) "
            "VALUES (gen_random_uuid(), $1, 'withdrawal', 2000, -2000, 0, now())", account.raw_id)
    await assert_ledger_matches(db, account.raw_id)


ADJUST = """mutation($input: AdjustWalletInput!) { adjustWallet(input: $input) {
  wallet { balance available } userErrors { field code message } } }"""


async def test_admin_adjustments_are_audited_and_never_touch_committed_money(
        gql, make_user, db, seller, clock, bidder):
    admin = await make_user("admin")
    alice = await bidder(funds="1000000")
    body = await gql(ADJUST, {"input": {"userId": alice.id, "amount": "-100000.00", "reason": "chargeback"}},
                     token=admin.token)
    assert body["data"]["adjustWallet"] == {"wallet": {"balance": "900000.00", "available": "900000.00"},
                                           "userErrors": []}
    assert await db.fetchval("SELECT count(*) FROM admin_audit_log WHERE action = 'wallet.adjust'") == 1
    too_much = await gql(ADJUST, {"input": {"userId": alice.id, "amount": "-900000.01", "reason": "x"}},
                         token=admin.token)
    assert too_much["data"]["adjustWallet"]["userErrors"][0]["code"] == "INSUFFICIENT_FUNDS"
    auction = await new_auction(gql, seller, clock)
    await place(gql, alice, auction, "4000000.00")  # commits 800,000 of the 900,000
    committed = await gql(ADJUST, {"input": {"userId": alice.id, "amount": "-100000.01", "reason": "x"}},
                          token=admin.token)
    assert committed["data"]["adjustWallet"]["userErrors"][0]["code"] == "FUNDS_COMMITTED"
    await assert_ledger_matches(db, alice.raw_id)


async def test_wallets_are_private(gql, make_user):
    alice, bob = await make_user("user"), await make_user("user")
    body = await gql("query($id: ID!) { node(id: $id) { ... on User { wallet { balance } } } }",
                     {"id": alice.id}, token=bob.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert to_global_id("User", uuid.uuid4())  # ids are opaque


async def test_cached_callers_pick_up_role_changes_within_the_cache_time(tmp_path, database_url, clock, db):
    from tests.conftest import REGISTER, make_settings
    from tests.harness import GraphQLClient, LiveServer

    live = LiveServer(make_settings(tmp_path, PRINCIPAL_CACHE_SECONDS=0.5), database_url, clock).start()
    client = GraphQLClient(live.url)
    try:
        body = await client(REGISTER, {"input": {"email": "cache@example.com", "password": PASSWORD}})
        token = body["data"]["register"]["accessToken"]
        me = "{ me { role } }"
        assert (await client(me, token=token))["data"]["me"]["role"] == "USER"
        await db.execute("UPDATE users SET role = 'admin' WHERE email = 'cache@example.com'")
        await asyncio.sleep(0.7)
        assert (await client(me, token=token))["data"]["me"]["role"] == "ADMIN"
        await db.execute("UPDATE users SET is_active = false WHERE email = 'cache@example.com'")
        await asyncio.sleep(0.7)
        assert (await client.post(me, token=token)).status_code == 401
    finally:
        await client.close()
        live.stop()
