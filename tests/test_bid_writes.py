"""The bid writer reads without locks and writes only if nothing it read has changed: whatever
changes in between (another process's bids, a withdrawal, the bidder's bids elsewhere) is seen
by the bid, which is then applied again under the locks."""

import uuid
from decimal import Decimal as D

import pytest

from forecourt.db.engine import plain_url
from forecourt.db.queries import bidding as sql
from forecourt.domain.auctions import BidRequest
from forecourt.domain.errors import DomainError
from forecourt.schema.relay import from_global_id
from forecourt.services import bidding
from forecourt.services.bidding import BidWriter, Placed, Submission
from tests.conftest import fund
from tests.test_auctions import new_auction


@pytest.fixture
async def writers(database_url, clock):
    """This process's bid writer and another process's, on the same database."""
    async def publish(outbox):
        pass

    pair = [BidWriter(plain_url(database_url), publish, clock) for _ in range(2)]
    yield pair
    for writer in pair:
        await writer.close()


@pytest.fixture
def bidder(make_user, db):
    async def make(funds):
        account = await make_user("user", kyc="approved")
        await fund(db, account, funds)
        return account
    return make


@pytest.fixture
def between_read_and_write(monkeypatch):
    """Run `interfere` once, after the first bid batch has read and before it writes."""
    def install(interfere):
        original, done = sql.write, []

        async def write(*args, **kwargs):
            if not done:
                done.append(True)
                await interfere()
            return await original(*args, **kwargs)

        monkeypatch.setattr(sql, "write", write)
        return done
    return install


@pytest.fixture
def reads(monkeypatch):
    """The bid_context() reads made from here on: whether each took the locks first."""
    made: list[bool] = []
    original = sql.context

    async def context(*args, lock, **kwargs):
        made.append(lock)
        return await original(*args, lock=lock, **kwargs)

    monkeypatch.setattr(sql, "context", context)
    return made


def raw(auction) -> uuid.UUID:
    return from_global_id(auction["id"])[1]


async def bid(writer, account, auction, amount):
    return await writer.place(raw(auction), Submission(BidRequest(account.raw_id, D(amount))))


async def withdraw(db, account, amount):
    await db.execute(
        "INSERT INTO transactions (id, user_id, type, amount, balance_delta, held_delta, created_at) "
        "VALUES (gen_random_uuid(), $1, 'withdrawal', $2, -$2::numeric, 0, now())", account.raw_id, amount)


async def state(db, auction):
    return await db.fetchrow("SELECT current_price, leader_id, bid_count, sequence FROM auctions WHERE id = $1",
                             raw(auction))


async def test_a_bid_overtaken_by_another_process_is_judged_against_the_new_price(
        gql, seller, clock, alice, bob, db, writers, between_read_and_write, reads):
    ours, theirs = writers
    auction = await new_auction(gql, seller, clock)

    async def bob_bids_elsewhere():
        assert isinstance(await bid(theirs, bob, auction, "1100000.00"), Placed)

    interfered = between_read_and_write(bob_bids_elsewhere)
    refused = await bid(ours, alice, auction, "1050000.00")  # was enough when read
    assert interfered
    assert isinstance(refused, DomainError) and refused.code == "BID_TOO_LOW"
    after = await state(db, auction)
    assert (after["current_price"], after["leader_id"], after["bid_count"], after["sequence"]) == (
        D("1100000.00"), bob.raw_id, 1, 1)
    assert await db.fetchval("SELECT count(*) FROM bids WHERE auction_id = $1", raw(auction)) == 1

    # and one that still outbids it is written after it, in sequence; having found another
    # process writing to this auction, our writer now locks before it reads
    reads.clear()
    assert isinstance(await bid(ours, alice, auction, "1150000.00"), Placed)
    assert reads == [True]
    assert [tuple(r) for r in await db.fetch(
        "SELECT position, amount FROM bids WHERE auction_id = $1 ORDER BY position", raw(auction))] == [
        (1, D("1100000.00")), (2, D("1150000.00"))]


async def test_a_withdrawal_between_read_and_write_is_seen_by_the_buying_power_check(
        gql, seller, clock, bidder, db, writers, between_read_and_write):
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)
    carol = await bidder("250000")  # 20% of 1,000,000 is 200,000

    async def withdraw_some():
        await withdraw(db, carol, 100000)

    between_read_and_write(withdraw_some)
    refused = await bid(ours, carol, auction, "1000000.00")
    assert isinstance(refused, DomainError) and refused.code == "INSUFFICIENT_FUNDS"
    assert (await state(db, auction))["bid_count"] == 0


async def test_committing_more_elsewhere_between_read_and_write_is_seen(
        gql, seller, clock, bidder, db, writers, between_read_and_write):
    ours, theirs = writers
    one, two = await new_auction(gql, seller, clock), await new_auction(gql, seller, clock)
    carol = await bidder("300000")  # buying power for 1,500,000: one of the two bids

    async def carol_bids_on_the_other_auction():
        assert isinstance(await bid(theirs, carol, two, "1000000.00"), Placed)

    between_read_and_write(carol_bids_on_the_other_auction)
    refused = await bid(ours, carol, one, "1000000.00")
    assert isinstance(refused, DomainError) and refused.code == "INSUFFICIENT_FUNDS"
    assert (await state(db, one))["bid_count"] == 0


async def test_committing_less_elsewhere_does_not_stop_a_bid(
        gql, seller, clock, bidder, bob, db, writers, between_read_and_write, reads):
    ours, theirs = writers
    one, two = await new_auction(gql, seller, clock), await new_auction(gql, seller, clock)
    carol = await bidder("400000")
    assert isinstance(await bid(ours, carol, two, "1000000.00"), Placed)

    async def carol_is_outbid_on_the_other_auction():
        assert isinstance(await bid(theirs, bob, two, "1050000.00"), Placed)

    between_read_and_write(carol_is_outbid_on_the_other_auction)
    assert isinstance(await bid(ours, carol, one, "1000000.00"), Placed)
    assert True not in reads  # written on the first attempt: nothing it relied on got worse
    assert (await state(db, one))["leader_id"] == carol.raw_id


# ---------------------------------------------------------------- what a writer remembers

@pytest.fixture
def writes(monkeypatch):
    """For each write_bids() from here on, whether it wrote."""
    made: list[bool] = []
    original = sql.write

    async def write(*args, **kwargs):
        version, current = await original(*args, **kwargs)
        made.append(version is not None)
        return version, current

    monkeypatch.setattr(sql, "write", write)
    return made


async def test_a_writer_applies_an_auctions_next_bid_to_what_it_wrote_without_reading(
        gql, seller, clock, alice, bob, db, writers, reads, writes):
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)
    assert isinstance(await bid(ours, alice, auction, "1000000.00"), Placed)
    assert reads == [False]
    for amount in ("1050000.00", "1100000.00"):
        assert isinstance(await bid(ours, alice, auction, amount), Placed)  # raising her own bid
    assert reads == [False]
    # a bidder it has not read yet is read (with the auction) first
    assert isinstance(await bid(ours, bob, auction, "1150000.00"), Placed)
    assert isinstance(await bid(ours, alice, auction, "1200000.00"), Placed)
    assert reads == [False, False]
    assert writes == [True] * 5  # each bid one write, none of them on an out-of-date memory
    after = await state(db, auction)
    assert (after["current_price"], after["leader_id"], after["bid_count"], after["sequence"]) == (
        D("1200000.00"), alice.raw_id, 5, 5)
    assert await db.fetchval("SELECT bidder_count FROM auctions WHERE id = $1", raw(auction)) == 2
    assert [tuple(r) for r in await db.fetch(
        "SELECT sequence, type FROM auction_events WHERE auction_id = $1 ORDER BY sequence", raw(auction))] == [
        (n, "BID_PLACED") for n in range(1, 6)]


async def test_a_bid_applied_to_an_out_of_date_memory_is_judged_again_on_what_changed(
        gql, seller, clock, alice, bob, db, writers, reads):
    ours, theirs = writers
    auction = await new_auction(gql, seller, clock)
    assert isinstance(await bid(ours, alice, auction, "1000000.00"), Placed)
    assert isinstance(await bid(theirs, bob, auction, "1100000.00"), Placed)  # another process
    refused = await bid(ours, alice, auction, "1050000.00")  # enough for what ours remembers
    assert isinstance(refused, DomainError) and refused.code == "BID_TOO_LOW"
    assert isinstance(await bid(ours, alice, auction, "1150000.00"), Placed)
    # judged on what the write that found the change read: no read of its own, nor locks (the
    # two reads are each writer's first)
    assert reads == [False, False]
    after = await state(db, auction)
    assert (after["current_price"], after["leader_id"], after["bid_count"], after["sequence"]) == (
        D("1150000.00"), alice.raw_id, 3, 3)
    assert [tuple(r) for r in await db.fetch(
        "SELECT position, bidder_id FROM bids WHERE auction_id = $1 ORDER BY position", raw(auction))] == [
        (1, alice.raw_id), (2, bob.raw_id), (3, alice.raw_id)]


async def test_a_refusal_is_never_given_on_memory_alone(gql, seller, clock, bidder, bob, db, writers):
    ours, theirs = writers
    one, two = await new_auction(gql, seller, clock), await new_auction(gql, seller, clock)
    carol = await bidder("300000")  # buying power for 1,500,000
    assert isinstance(await bid(ours, carol, two, "1000000.00"), Placed)
    refused = await bid(ours, carol, one, "1000000.00")  # 2,000,000 committed: too much
    assert isinstance(refused, DomainError) and refused.code == "INSUFFICIENT_FUNDS"
    # outbid on the other auction by another process: carol now commits nothing elsewhere,
    # while the writer still remembers her 1,000,000 there
    assert isinstance(await bid(theirs, bob, two, "1050000.00"), Placed)
    assert isinstance(await bid(ours, carol, one, "1000000.00"), Placed)


async def test_a_kyc_status_changed_since_the_writer_read_it_is_seen(
        gql, seller, clock, alice, db, writers):
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)
    assert isinstance(await bid(ours, alice, auction, "1000000.00"), Placed)
    await db.execute("UPDATE users SET kyc_status = 'rejected' WHERE id = $1", alice.raw_id)
    refused = await bid(ours, alice, auction, "1050000.00")
    assert isinstance(refused, DomainError) and refused.code == "KYC_REQUIRED"
    assert (await state(db, auction))["bid_count"] == 1


async def test_an_idempotency_key_already_used_on_the_auction_is_seen(gql, seller, clock, alice, db, writers):
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)

    async def keyed(amount):
        return await ours.place(raw(auction), Submission(BidRequest(alice.raw_id, D(amount)), "retry-1"))

    first = await keyed("1000000.00")
    assert isinstance(first, Placed) and not first.replayed
    again = await keyed("1000000.00")
    assert isinstance(again, Placed) and again.replayed and again.bid["id"] == first.bid["id"]
    # raising her own bid would be accepted by the rules: the write finds the key taken
    reused = await keyed("1100000.00")
    assert isinstance(reused, DomainError) and reused.code == "IDEMPOTENCY_KEY_REUSED"
    assert (await state(db, auction))["bid_count"] == 1


async def test_a_writer_remembers_an_auctions_most_recent_bidders_only(
        gql, seller, clock, alice, bob, bidder, db, writers, reads, monkeypatch):
    monkeypatch.setattr(bidding, "MAX_KNOWN_BIDDERS", 2)
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)
    carol = await bidder("1000000")
    amounts = (f"{1_000_000 + 50_000 * n}.00" for n in range(10))
    for account in (alice, bob, carol):
        assert isinstance(await bid(ours, account, auction, next(amounts)), Placed)
    assert reads == [False, False, False]  # each new bidder is read, with the ones remembered
    for account in (bob, carol):
        assert isinstance(await bid(ours, account, auction, next(amounts)), Placed)
    assert reads == [False, False, False]
    assert isinstance(await bid(ours, alice, auction, next(amounts)), Placed)  # no longer remembered
    assert reads == [False, False, False, False]


async def test_a_withdrawal_after_the_writer_remembered_the_funds_is_seen(
        gql, seller, clock, bidder, db, writers, writes):
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)
    carol = await bidder("250000")
    assert isinstance(await bid(ours, carol, auction, "1000000.00"), Placed)
    await withdraw(db, carol, 100000)
    refused = await bid(ours, carol, auction, "1050000.00")  # 210,000 of buying power needed
    assert isinstance(refused, DomainError) and refused.code == "INSUFFICIENT_FUNDS"
    assert writes == [True, False]
    assert (await state(db, auction))["bid_count"] == 1


async def test_an_auction_cancelled_after_the_writer_remembered_it_takes_no_bid(
        gql, seller, clock, alice, db, writers):
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)
    assert isinstance(await bid(ours, alice, auction, "1000000.00"), Placed)
    await db.execute("UPDATE auctions SET status = 'cancelled' WHERE id = $1", raw(auction))
    refused = await bid(ours, alice, auction, "1050000.00")
    assert isinstance(refused, DomainError) and refused.code == "AUCTION_NOT_LIVE"
    assert (await state(db, auction))["bid_count"] == 1


async def test_a_kyc_decision_between_a_locked_read_and_its_write_is_applied_not_raised(
        gql, seller, clock, alice, db, writers, between_read_and_write):
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)
    ours._remember_contention(raw(auction))  # another process is bidding: lock, then read

    async def kyc_rejected():  # users rows are not among the locks the bid takes
        await db.execute("UPDATE users SET kyc_status = 'rejected' WHERE id = $1", alice.raw_id)

    interfered = between_read_and_write(kyc_rejected)
    refused = await bid(ours, alice, auction, "1000000.00")
    assert interfered
    assert isinstance(refused, DomainError) and refused.code == "KYC_REQUIRED"
    assert (await state(db, auction))["bid_count"] == 0


async def test_a_memory_left_unused_for_a_while_is_read_afresh(
        gql, seller, clock, alice, db, writers, reads, monkeypatch):
    monkeypatch.setattr(bidding, "KNOWN_SECONDS", 0.0)
    ours, _ = writers
    auction = await new_auction(gql, seller, clock)
    for amount in ("1000000.00", "1050000.00"):
        assert isinstance(await bid(ours, alice, auction, amount), Placed)
    assert reads == [False, False]
