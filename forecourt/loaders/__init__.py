"""Per-request DataLoaders, one `XByYLoader` per relation, created on first use."""

from __future__ import annotations

from functools import cached_property

from forecourt.db.reader import Reader
from forecourt.loaders.auctions import (
    AuctionByIdLoader,
    BidsPageLoader,
    WalletByUserLoader,
)
from forecourt.loaders.catalog import (
    ActiveAuctionRowByVehicleLoader,
    CatalogEntryByIdLoader,
    LatestValuationRowByVehicleLoader,
    SimilarVehiclesLoader,
    UserRowByIdLoader,
    VehicleByIdLoader,
    VehicleDetailsByIdLoader,
)
from forecourt.loaders.identity import ApiTokensByUserLoader, UserByIdLoader
from forecourt.loaders.organizations import (
    BillingByOrganizationLoader,
    OrganizationByIdLoader,
)
from forecourt.loaders.training import (
    FeedbackBySessionLoader,
    PersonaByIdLoader,
    PreviousScoreBySessionLoader,
    ProductByIdLoader,
    ScenarioByIdLoader,
    TrainingSessionByIdLoader,
    TurnsBySessionLoader,
)


class Loaders:
    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    @cached_property
    def user_by_id(self) -> UserByIdLoader:
        return UserByIdLoader(self._reader)

    @cached_property
    def organization_by_id(self) -> OrganizationByIdLoader:
        return OrganizationByIdLoader(self._reader)

    @cached_property
    def billing_by_organization(self) -> BillingByOrganizationLoader:
        return BillingByOrganizationLoader(self._reader)

    @cached_property
    def api_tokens_by_user(self) -> ApiTokensByUserLoader:
        return ApiTokensByUserLoader(self._reader)

    @cached_property
    def catalog_entry_by_id(self) -> CatalogEntryByIdLoader:
        return CatalogEntryByIdLoader(self._reader)

    @cached_property
    def vehicle_by_id(self) -> VehicleByIdLoader:
        return VehicleByIdLoader(self._reader)

    @cached_property
    def similar_vehicles(self) -> SimilarVehiclesLoader:
        return SimilarVehiclesLoader(self._reader)


    @cached_property
    def vehicle_details_by_id(self) -> VehicleDetailsByIdLoader:
        return VehicleDetailsByIdLoader(self._reader)

    @cached_property
    def user_row_by_id(self) -> UserRowByIdLoader:
        return UserRowByIdLoader(self._reader)

    @cached_property
    def latest_valuation_row_by_vehicle(self) -> LatestValuationRowByVehicleLoader:
        return LatestValuationRowByVehicleLoader(self._reader)

    @cached_property
    def active_auction_row_by_vehicle(self) -> ActiveAuctionRowByVehicleLoader:
        return ActiveAuctionRowByVehicleLoader(self._reader)

    @cached_property
    def auction_by_id(self) -> AuctionByIdLoader:
        return AuctionByIdLoader(self._reader)


    @cached_property
    def bids_page(self) -> BidsPageLoader:
        return BidsPageLoader(self._reader)

    @cached_property
    def wallet_by_user(self) -> WalletByUserLoader:
        return WalletByUserLoader(self._reader)

    @cached_property
    def scenario_by_id(self) -> ScenarioByIdLoader:
        return ScenarioByIdLoader(self._reader)

    @cached_property
    def persona_by_id(self) -> PersonaByIdLoader:
        return PersonaByIdLoader(self._reader)

    @cached_property
    def product_by_id(self) -> ProductByIdLoader:
        return ProductByIdLoader(self._reader)

    @cached_property
    def training_session_by_id(self) -> TrainingSessionByIdLoader:
        return TrainingSessionByIdLoader(self._reader)

    @cached_property
    def turns_by_session(self) -> TurnsBySessionLoader:
        return TurnsBySessionLoader(self._reader)

    @cached_property
    def feedback_by_session(self) -> FeedbackBySessionLoader:
        return FeedbackBySessionLoader(self._reader)

    @cached_property
    def previous_score_by_session(self) -> PreviousScoreBySessionLoader:
        return PreviousScoreBySessionLoader(self._reader)
