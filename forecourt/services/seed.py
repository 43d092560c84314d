"""Demo data for a fresh server (`forecourt seed`): a catalog of common makes and models with
Nigerian-market prices (seed 004) and a few hundred inventory vehicles. Idempotent."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from forecourt.auth.credentials import Credentials
from forecourt.auth.principal import Principal
from forecourt.db.models import CatalogEntry, User, Vehicle
from forecourt.domain.catalog import ImportErrorPolicy, ImportMode, VehicleCondition
from forecourt.domain.identity import KycStatus, Role
from forecourt.services import Work
from forecourt.services.catalog import VehicleDraft, import_vehicles
from forecourt.services.identity import create_user

DEMO_DEALER = "demo-dealer@forecourt.example.com"
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
M = Decimal(1_000_000)

# make, model, trim, first year, body, fuel, drivetrain, hp, transmission,
# foreign-used, local-used, brand-new (millions of naira), resale rank 1-10
CATALOG = [
    ("Toyota", "Camry", "LE", 2018, "sedan", "petrol", "fwd", 203, "automatic", 14, 9, 45, 9),
    ("Toyota", "Corolla", "LE", 2019, "sedan", "petrol", "fwd", 139, "cvt", 11, 7, 32, 9),
    ("Toyota", "RAV4", "XLE", 2019, "suv", "petrol", "awd", 203, "automatic", 22, 15, 60, 9),
    ("Toyota", "Highlander", "XLE", 2020, "suv", "petrol", "awd", 295, "automatic", 35, 24, 85, 8),
    ("Toyota", "Hilux", "SR5", 2018, "pickup", "diesel", "4wd", 201, "automatic", 28, 20, 70, 9),
    ("Toyota", "Land Cruiser", "VX", 2018, "suv", "diesel", "4wd", 304, "automatic", 80, 60, 180, 10),
    ("Toyota", "Sienna", "XLE", 2017, "van", "petrol", "fwd", 296, "automatic", 18, 12, 55, 8),
    ("Lexus", "RX 350", "Base", 2018, "suv", "petrol", "awd", 295, "automatic", 32, 22, 90, 9),
    ("Lexus", "ES 350", "Base", 2019, "sedan", "petrol", "fwd", 302, "automatic", 28, 19, 80, 8),
    ("Lexus", "GX 460", "Premium", 2017, "suv", "petrol", "4wd", 301, "automatic", 45, 32, 120, 9),
    ("Honda", "Accord", "Sport", 2018, "sedan", "petrol", "fwd", 192, "cvt", 13, 8, 42, 8),
    ("Honda", "Civic", "EX", 2019, "sedan", "petrol", "fwd", 158, "cvt", 10, 6.5, 30, 7),
    ("Honda", "CR-V", "EX", 2018, "suv", "petrol", "awd", 190, "cvt", 18, 12, 52, 8),
    ("Honda", "Pilot", "EX-L", 2019, "suv", "petrol", "awd", 280, "automatic", 25, 17, 70, 7),
    ("Mercedes-Benz", "C 300", "4MATIC", 2019, "sedan", "petrol", "awd", 255, "automatic", 30, 20, 85, 7),
    ("Mercedes-Benz", "GLE 350", "4MATIC", 2020, "suv", "petrol", "awd", 255, "automatic", 55, 38, 140, 7),
    ("Mercedes-Benz", "E 350", "Base", 2018, "sedan", "petrol", "rwd", 241, "automatic", 35, 24, 100, 7),
    ("BMW", "X5", "xDrive40i", 2019, "suv", "petrol", "awd", 335, "automatic", 50, 33, 130, 6),
    ("BMW", "330i", "Base", 2019, "sedan", "petrol", "rwd", 255, "automatic", 28, 18, 80, 6),
    ("Ford", "Explorer", "XLT", 2018, "suv", "petrol", "awd", 290, "automatic", 20, 13, 60, 6),
    ("Ford", "Ranger", "XLT", 2019, "pickup", "diesel", "4wd", 270, "automatic", 22, 15, 55, 7),
    ("Ford", "Mustang", "GT", 2018, "coupe", "petrol", "rwd", 460, "manual", 40, 28, 90, 6),
    ("Hyundai", "Elantra", "SEL", 2019, "sedan", "petrol", "fwd", 147, "automatic", 9, 6, 28, 6),
    ("Hyundai", "Tucson", "SEL", 2019, "suv", "petrol", "fwd", 161, "automatic", 14, 9, 40, 6),
    ("Hyundai", "Santa Fe", "SEL", 2019, "suv", "petrol", "awd", 185, "automatic", 18, 12, 50, 6),
    ("Kia", "Sportage", "LX", 2019, "suv", "petrol", "fwd", 181, "automatic", 13, 8.5, 38, 6),
    ("Kia", "Sorento", "EX", 2019, "suv", "petrol", "awd", 290, "automatic", 17, 11, 48, 6),
    ("Nissan", "Altima", "SV", 2019, "sedan", "petrol", "fwd", 188, "cvt", 10, 6.5, 32, 5),
    ("Nissan", "Pathfinder", "SV", 2018, "suv", "petrol", "4wd", 284, "cvt", 17, 11, 50, 5),
    ("Volkswagen", "Golf", "TSI", 2018, "hatchback", "petrol", "fwd", 170, "automatic", 9, 6, 30, 5),
    ("Peugeot", "3008", "Allure", 2019, "suv", "diesel", "fwd", 130, "automatic", 15, 10, 42, 5),
    ("Tesla", "Model 3", "Long Range", 2020, "sedan", "electric", "awd", 346, "automatic", 35, 26, 75, 6),
    ("Mitsubishi", "Pajero", "GLS", 2018, "suv", "diesel", "4wd", 178, "automatic", 18, 12, 50, 6),
    ("Suzuki", "Swift", "GL", 2020, "hatchback", "petrol", "fwd", 82, "manual", 6, 4, 18, 5),
]
FEATURES = ["Sunroof", "Leather seats", "Reverse camera", "Navigation", "Keyless entry",
            "Apple CarPlay", "Heated seats", "Third row", "Tow package", "Alloy wheels",
            "Bluetooth", "Blind-spot monitor", "Lane assist", "Premium sound"]
COLORS = ["Black", "White", "Silver", "Grey", "Blue", "Red", "Champagne"]
CITIES = ["Lagos", "Abuja", "Port Harcourt", "Ibadan", "Kano", "Enugu", "Benin City"]
CONDITION_WEIGHTS = [(VehicleCondition.EXCELLENT, 3), (VehicleCondition.CLEAN, 6),
                     (VehicleCondition.ROUGH, 2), (VehicleCondition.SALVAGE, 1),
                     (VehicleCondition.UPGRADED, 1)]


@dataclass(frozen=True)
class SeedReport:
    catalog_entries: int
    vehicles_created: int
    vehicles_total: int
    dealer_password: str | None
    dealer_email: str = DEMO_DEALER


def _vin(rng: random.Random) -> str:
    return "".join(rng.choice(VIN_ALPHABET) for _ in range(17))


async def seed(work: Work, credentials: Credentials, *, vehicles: int = 300) -> SeedReport:
    rows = [
        {
            "id": uuid.uuid4(), "make": make, "model": model, "trim": trim, "year_start": year,
            "body_type": body, "fuel_type": fuel, "drivetrain": drive, "horsepower": hp,
            "transmission": gearbox, "price_foreign_used": Decimal(str(fu)) * M,
            "price_local_used": Decimal(str(lu)) * M, "price_brand_new": Decimal(str(bn)) * M,
            "resell_rank": rank,
        }
        for make, model, trim, year, body, fuel, drive, hp, gearbox, fu, lu, bn, rank in CATALOG
    ]
    await work.session.execute(insert(CatalogEntry).values(rows).on_conflict_do_nothing())
    entries = list(await work.session.scalars(select(CatalogEntry).order_by(CatalogEntry.make, CatalogEntry.model)))

    dealer = await work.session.scalar(select(User).where(User.email == DEMO_DEALER))
    password = None
    if dealer is None:
        password = "Demo" + uuid.uuid4().hex[:10] + "1"
        dealer = await create_user(
            work, credentials, email=DEMO_DEALER, password=password,
            display_name="Forecourt Demo Motors", role=Role.DEALER,
        )
    work.actor = Principal(dealer.id, Role(dealer.role), KycStatus(dealer.kyc_status))

    rng = random.Random(2026)  # the same demo inventory every time: idempotent by VIN
    drafts = []
    for _ in range(vehicles):
        entry = rng.choice(entries)
        year = rng.randint(entry.year_start, work.now.year)
        age = work.now.year - year
        condition = rng.choices([c for c, _ in CONDITION_WEIGHTS], [w for _, w in CONDITION_WEIGHTS])[0]
        base = entry.price_local_used or entry.price_foreign_used
        factor = Decimal(str(round(rng.uniform(0.8, 1.35) * 0.9 ** max(age - 3, 0), 3)))
        price = (base * factor).quantize(Decimal("1000"))
        drafts.append(VehicleDraft(
            vin=_vin(rng), year=year, make=entry.make, model=entry.model, condition=condition,
            catalog_entry_id=entry.id, trim=entry.trim,
            mileage_km=max(0, int(rng.gauss(15_000 * max(age, 0.5), 6_000))),
            color=rng.choice(COLORS), price=price, features=rng.sample(FEATURES, rng.randint(2, 6)),
            location=rng.choice(CITIES),
            description=f"{year} {entry.make} {entry.model} {entry.trim}, {condition.value}, "
                        f"{rng.choice(['one owner', 'Tokunbo', 'Nigerian used', 'full service history'])}.",
        ))
    result = await import_vehicles(
        work, drafts, mode=ImportMode.UPSERT, policy=ImportErrorPolicy.REJECT_FAILED_ROWS, dry_run=False
    )
    total = await work.session.scalar(
        select(func.count()).select_from(Vehicle).where(Vehicle.listed_by == dealer.id)
    )
    return SeedReport(len(entries), result.created, total, password)
