"""Auction, bid and wallet loaders: one query per batch."""

from __future__ import annotations

from collections import defaultdict

from aiodataloader import DataLoader
from sqlalchemy import text

from forecourt.db.reader import Reader
from forecourt.loaders.base import ByIdLoader


class AuctionByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.execute(text("SELECT * FROM auctions WHERE id = ANY(:ids)"), {"ids": ids})
        return {r["id"]: dict(r) for r in rows.mappings()}


class BidsPageLoader(DataLoader):
    """Keys are (auction id, before position or None, limit): the newest bids first, one
    LATERAL query per distinct (before, limit) in a batch."""

    def __init__(self, reader: Reader) -> None:
        super().__init__()
        self.reader = reader

    async def batch_load_fn(self, keys):
        groups: dict[tuple, set] = defaultdict(set)
        for auction_id, before, limit in keys:
            groups[(before, limit)].add(auction_id)
        found: dict[tuple, list] = defaultdict(list)
        for (before, limit), ids in groups.items():
            rows = await self.reader.execute(text(
                """
                SELECT b.* FROM unnest(CAST(:ids AS uuid[])) AS a(id)
                CROSS JOIN LATERAL (
                    SELECT * FROM bids WHERE auction_id = a.id
                      AND (CAST(:before AS int) IS NULL OR position < :before)
                    ORDER BY position DESC LIMIT :limit
                ) b
                ORDER BY b.auction_id, b.position DESC
                """), {"ids": list(ids), "before": before, "limit": limit})
            for r in rows.mappings():
                found[(r["auction_id"], before, limit)].append(dict(r))
        return [found[key] for key in keys]


class WalletByUserLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.execute(text(
            """
            SELECT u.id AS user_id, coalesce(w.balance, 0) AS balance, coalesce(w.held, 0) AS held,
                   coalesce((SELECT sum(greatest(a.current_price, coalesce(a.leader_max, 0)))
                               FROM auctions a WHERE a.status = 'live' AND a.leader_id = u.id), 0)
                       AS committed
            FROM unnest(CAST(:ids AS uuid[])) AS u(id) LEFT JOIN wallets w ON w.user_id = u.id
            """), {"ids": ids})
        return {r["user_id"]: dict(r) for r in rows.mappings()}
