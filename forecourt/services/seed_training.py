"""Shared training presets for `forecourt seed`: a Ford dealership set on catalog vehicles
(seed 000) and a retail product set (seed 001), with buyer personas and scenarios. Idempotent:
presets are unique by name (personas by type), so a second run adds nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from forecourt.db.models import BuyerPersona, CatalogEntry, Scenario, TrainingProduct
from forecourt.domain.training import DEALERSHIP_RUBRIC, RETAIL_RUBRIC, Metric
from forecourt.services import Work

PERSONAS = [
    ("Family Buyer", "practical, safety-first, compares everything", "₦45M", ["safety", "space", "running costs"],
     "Two parents with three children and a boat; the current minivan is out of warranty."),
    ("Tradesperson", "direct, busy, values durability over comfort", "₦35M", ["payload", "towing", "reliability"],
     "Runs a small building company; the truck is a work tool and must not break down."),
    ("Performance Enthusiast", "excited, knowledgeable, tests your product knowledge", "₦60M",
     ["horsepower", "sound", "resale value"], "Has followed the Mustang for years and reads every review."),
    ("First-time Buyer", "nervous, budget-anxious, needs reassurance", "₦15M",
     ["monthly payment", "insurance", "warranty"],
     "A young professional buying their first car with a loan."),
    ("Ranch Owner", "skeptical of city salespeople, loyal once convinced", "$4,000",
     ["durability", "fit", "craftsmanship"],
     "Works cattle daily; has worn out two cheap saddles in five years."),
    ("Gift Shopper", "friendly, undecided, price-aware", "$300", ["presentation", "returns", "authenticity"],
     "Buying a birthday present for a rancher father and knows little about western goods."),
]

# Ford vehicles of the demo catalog (seed 000): what a salesperson should bring up about each.
DEALERSHIP = [
    ("Family SUV walk-in", "Explorer", "Family Buyer", 2,
     "A family of five walks in to replace their minivan; they are comparing the Explorer with a rival SUV.",
     ["third-row seating", "Co-Pilot360", "towing capacity", "SYNC 4", "hybrid"],
     ["It's more than we planned to spend", "The other dealer offered a bigger discount"],
     ["needs room for three kids and a boat", "worried about fuel costs"]),
    ("Contractor needs a pickup", "Ranger", "Tradesperson", 3,
     "A builder needs a pickup that tows a trailer of tools and survives site roads.",
     ["payload", "towing capacity", "4x4", "diesel", "bed liner"],
     ["I only buy Toyota Hilux", "Diesel servicing is expensive"],
     ["downtime costs money", "needs a work truck that lasts"]),
    ("Weekend thrill", "Mustang", "Performance Enthusiast", 4,
     "An enthusiast wants a Mustang GT but is worried about insurance and resale.",
     ["V8", "460 hp", "manual", "track apps", "active exhaust"],
     ["Insurance on a V8 is too high", "It will lose value quickly"],
     ["wants a weekend car", "partner thinks it is impractical"]),
    ("First car on finance", "Ranger", "First-time Buyer", 1,
     "A first-time buyer asks about a used Ranger on finance and is anxious about monthly payments.",
     ["warranty", "financing", "low running costs", "safety rating"],
     ["I can't afford the monthly payment", "I need to think about it"],
     ["first loan", "needs reassurance"]),
]

PRODUCTS = [
    ("Pecos Ranch Saddle", "saddles", "A hand-tooled working saddle built on a rawhide-covered tree.",
     ["hand-tooled leather", "rawhide-covered tree", "lifetime tree warranty", "custom fit", "stainless hardware"],
     [("Standard", "2800.00"), ("Custom fit", "3600.00")],
     [("It's twice the price of a factory saddle",
       "A factory saddle lasts two seasons of daily work; this one lasts decades.",
       "Compare cost per year of use, not the sticker price."),
      ("I can't try it on my horse here", "We fit it to your horse's measurements and take it back if it does not fit.",
       "Offer the fitting service before they ask.")],
     ["Ask how many hours a day they ride.", "Let them feel the tooling."]),
    ("Cattleman Boots", "boots", "Goodyear-welted cattleman boots in full-grain leather.",
     ["Goodyear welt", "full-grain leather", "resoleable", "steel shank", "cushioned insole"],
     [("Classic", "289.00"), ("Exotic", "549.00")],
     [("Boots at the farm store cost half", "These are resoleable: one pair for ten years instead of five pairs.",
       "Talk about resoling, not luxury."),
      ("What if they don't fit?", "Free exchanges within 60 days, even worn.",
       "Lead with the exchange policy for gifts.")],
     ["Measure both feet.", "Ask what they do in the boots all day."]),
]

RETAIL = [
    ("The skeptical rancher", "Pecos Ranch Saddle", "Ranch Owner", 4,
     "A rancher who has worn out two cheap saddles doubts a premium saddle is worth it.",
     ["pays for itself", "fit for the horse"]),
    ("Birthday boots", "Cattleman Boots", "Gift Shopper", 2,
     "A shopper wants boots for their father's birthday but doesn't know his size.",
     ["unsure of size", "wants it to feel special"]),
]


@dataclass(frozen=True)
class TrainingSeedReport:
    personas: int
    products: int
    scenarios: int


def _rubric(weights: dict[Metric, float]) -> dict[str, float]:
    return {metric.value: weight for metric, weight in weights.items()}


async def seed_training(work: Work) -> TrainingSeedReport:
    session = work.session
    await session.execute(insert(BuyerPersona).values([
        {"id": uuid.uuid4(), "organization_id": None, "type": type_, "personality": personality,
         "budget": budget, "priorities": priorities, "background": background}
        for type_, personality, budget, priorities, background in PERSONAS
    ]).on_conflict_do_nothing())
    await session.execute(insert(TrainingProduct).values([
        {"id": uuid.uuid4(), "organization_id": None, "name": name, "category": category,
         "description": description, "features": features,
         "pricing_tiers": [{"name": n, "price": str(Decimal(p))} for n, p in tiers],
         "objections": [{"objection": o, "response": r, "tip": t} for o, r, t in objections],
         "training_tips": tips}
        for name, category, description, features, tiers, objections, tips in PRODUCTS
    ]).on_conflict_do_nothing())
    personas = dict((await session.execute(
        select(BuyerPersona.type, BuyerPersona.id).where(BuyerPersona.organization_id.is_(None)))).all())
    products = dict((await session.execute(
        select(TrainingProduct.name, TrainingProduct.id).where(TrainingProduct.organization_id.is_(None)))).all())
    fords = dict((await session.execute(
        select(CatalogEntry.model, CatalogEntry.id).where(CatalogEntry.make == "Ford"))).all())

    rows = [
        {"id": uuid.uuid4(), "organization_id": None, "name": name, "description": description,
         "difficulty": difficulty, "persona_id": personas[persona], "catalog_entry_id": fords[model],
         "product_id": None, "customer_type": persona, "key_features": features, "objections": objections,
         "pain_points": pains, "rubric": _rubric(DEALERSHIP_RUBRIC), "pass_score": 80.0}
        for name, model, persona, difficulty, description, features, objections, pains in DEALERSHIP
        if model in fords  # the demo catalog seeds these Fords first
    ] + [
        {"id": uuid.uuid4(), "organization_id": None, "name": name, "description": description,
         "difficulty": difficulty, "persona_id": personas[persona], "catalog_entry_id": None,
         "product_id": products[product], "customer_type": persona, "key_features": [], "objections": [],
         "pain_points": pains, "rubric": _rubric(RETAIL_RUBRIC), "pass_score": 80.0}
        for name, product, persona, difficulty, description, pains in RETAIL
    ]
    await session.execute(insert(Scenario).values(rows).on_conflict_do_nothing())
    scenarios = len((await session.execute(select(Scenario.id).where(Scenario.organization_id.is_(None)))).all())
    return TrainingSeedReport(len(personas), len(products), scenarios)
