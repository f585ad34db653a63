"""The beauty-store vocabulary: skin types, concerns, categories, actives and how they relate.

These tables are the generator's "dermatology": which actives suit which skin, which
categories are consumables with a repurchase cycle, and which step of a routine follows
which. They are plain data so a reader can check them against common skincare advice.
"""

from __future__ import annotations

SKIN_TYPES: tuple[str, ...] = ("dry", "oily", "combination", "normal", "sensitive")
SKIN_TYPE_SHARE: tuple[float, ...] = (0.22, 0.20, 0.28, 0.18, 0.12)

CONCERNS: tuple[str, ...] = (
    "acne",
    "aging",
    "dark spots",
    "redness",
    "dryness",
    "dullness",
    "pores",
)

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")

INGREDIENTS: tuple[str, ...] = (
    "niacinamide",
    "retinol",
    "salicylic acid",
    "hyaluronic acid",
    "ceramides",
    "vitamin C",
    "zinc oxide",
    "glycolic acid",
    "lactic acid",
    "squalane",
    "peptides",
    "azelaic acid",
    "centella asiatica",
    "panthenol",
    "benzoyl peroxide",
    "tea tree oil",
    "alpha arbutin",
    "glycerin",
    "shea butter",
    "bakuchiol",
    "titanium dioxide",
    "allantoin",
)

# category -> (share of catalogue, repurchase cycle in days, base price, typical actives)
CATEGORIES: dict[str, tuple[float, int, float, tuple[str, ...]]] = {
    "cleanser": (
        0.15,
        56,
        14.0,
        ("salicylic acid", "glycerin", "ceramides", "tea tree oil", "centella asiatica"),
    ),
    "toner": (0.10, 70, 16.0, ("niacinamide", "glycolic acid", "lactic acid", "panthenol")),
    "serum": (
        0.18,
        60,
        32.0,
        (
            "niacinamide",
            "retinol",
            "vitamin C",
            "hyaluronic acid",
            "peptides",
            "azelaic acid",
            "alpha arbutin",
            "bakuchiol",
        ),
    ),
    "moisturizer": (
        0.16,
        60,
        28.0,
        ("ceramides", "squalane", "shea butter", "hyaluronic acid", "peptides", "glycerin"),
    ),
    "sunscreen": (0.10, 45, 22.0, ("zinc oxide", "titanium dioxide", "niacinamide", "vitamin C")),
    "mask": (0.07, 90, 18.0, ("salicylic acid", "hyaluronic acid", "centella asiatica")),
    "eye cream": (0.06, 90, 35.0, ("peptides", "retinol", "hyaluronic acid", "ceramides")),
    "exfoliant": (
        0.08,
        75,
        24.0,
        ("glycolic acid", "lactic acid", "salicylic acid", "azelaic acid"),
    ),
    "face oil": (0.05, 90, 30.0, ("squalane", "bakuchiol", "tea tree oil")),
    "lip balm": (0.05, 40, 8.0, ("shea butter", "panthenol", "allantoin")),
}

# The next step of a routine: a customer who just bought a cleanser tends to buy a toner next.
ROUTINE_NEXT: dict[str, str] = {
    "cleanser": "toner",
    "toner": "serum",
    "serum": "moisturizer",
    "moisturizer": "sunscreen",
    "sunscreen": "cleanser",
    "exfoliant": "serum",
    "mask": "moisturizer",
    "eye cream": "serum",
    "face oil": "moisturizer",
    "lip balm": "sunscreen",
}

# How much each skin type likes each active (absent = neutral). Negative = to avoid.
SKIN_TYPE_ACTIVES: dict[str, dict[str, float]] = {
    "dry": {
        "hyaluronic acid": 1.5,
        "ceramides": 1.5,
        "squalane": 1.2,
        "shea butter": 1.2,
        "glycerin": 1.0,
        "salicylic acid": -1.0,
        "benzoyl peroxide": -1.2,
    },
    "oily": {
        "salicylic acid": 1.5,
        "niacinamide": 1.2,
        "zinc oxide": 0.8,
        "tea tree oil": 1.0,
        "benzoyl peroxide": 0.6,
        "shea butter": -1.5,
        "squalane": -0.5,
    },
    "combination": {
        "niacinamide": 1.0,
        "hyaluronic acid": 0.8,
        "salicylic acid": 0.6,
        "lactic acid": 0.5,
    },
    "normal": {"vitamin C": 0.6, "peptides": 0.5, "hyaluronic acid": 0.5},
    "sensitive": {
        "centella asiatica": 1.5,
        "panthenol": 1.2,
        "allantoin": 1.0,
        "ceramides": 0.8,
        "retinol": -2.5,
        "glycolic acid": -1.8,
        "benzoyl peroxide": -1.8,
        "salicylic acid": -1.0,
        "tea tree oil": -1.0,
        "vitamin C": -0.6,
    },
}

CONCERN_ACTIVES: dict[str, dict[str, float]] = {
    "acne": {
        "salicylic acid": 1.2,
        "benzoyl peroxide": 1.2,
        "tea tree oil": 0.8,
        "niacinamide": 0.8,
        "azelaic acid": 0.6,
    },
    "aging": {"retinol": 1.4, "peptides": 1.2, "bakuchiol": 1.0, "vitamin C": 0.6},
    "dark spots": {
        "vitamin C": 1.3,
        "alpha arbutin": 1.2,
        "niacinamide": 0.8,
        "azelaic acid": 0.8,
    },
    "redness": {
        "centella asiatica": 1.2,
        "azelaic acid": 1.0,
        "niacinamide": 0.5,
        "panthenol": 0.6,
    },
    "dryness": {"hyaluronic acid": 1.2, "ceramides": 1.2, "squalane": 0.8, "glycerin": 0.6},
    "dullness": {"vitamin C": 1.0, "glycolic acid": 1.0, "lactic acid": 0.9},
    "pores": {"salicylic acid": 1.0, "niacinamide": 1.0, "retinol": 0.6},
}

# How likely each concern is for each skin type (before normalisation).
SKIN_TYPE_CONCERNS: dict[str, dict[str, float]] = {
    "dry": {"dryness": 3.0, "aging": 1.5, "dullness": 1.2, "redness": 0.6},
    "oily": {"acne": 3.0, "pores": 2.5, "dark spots": 0.8},
    "combination": {"pores": 1.5, "acne": 1.2, "dullness": 1.0, "dryness": 0.8},
    "normal": {"aging": 1.5, "dark spots": 1.2, "dullness": 1.0},
    "sensitive": {"redness": 3.0, "dryness": 1.2, "acne": 0.6},
}

# Which categories each skin type reaches for more often (multiplier on the base share).
SKIN_TYPE_CATEGORIES: dict[str, dict[str, float]] = {
    "dry": {"moisturizer": 1.8, "face oil": 1.8, "mask": 1.3, "exfoliant": 0.6},
    "oily": {"cleanser": 1.6, "exfoliant": 1.6, "toner": 1.4, "face oil": 0.3},
    "combination": {"toner": 1.3, "serum": 1.2},
    "normal": {"sunscreen": 1.3, "eye cream": 1.3},
    "sensitive": {"moisturizer": 1.4, "exfoliant": 0.3, "lip balm": 1.4},
}

# Product names start with what their lead active does.
ACTIVE_DESCRIPTOR: dict[str, str] = {
    "hyaluronic acid": "Hydrating",
    "glycerin": "Hydrating",
    "ceramides": "Barrier Repair",
    "salicylic acid": "Clarifying",
    "tea tree oil": "Clarifying",
    "benzoyl peroxide": "Blemish Control",
    "zinc oxide": "Mineral",
    "titanium dioxide": "Mineral",
    "vitamin C": "Brightening",
    "alpha arbutin": "Brightening",
    "retinol": "Renewing",
    "glycolic acid": "Resurfacing",
    "lactic acid": "Gentle Exfoliating",
    "bakuchiol": "Renewing",
    "centella asiatica": "Calming",
    "panthenol": "Soothing",
    "allantoin": "Soothing",
    "peptides": "Firming",
    "shea butter": "Nourishing",
    "squalane": "Nourishing",
    "niacinamide": "Balancing",
    "azelaic acid": "Even Tone",
}

BRAND_PREFIXES: tuple[str, ...] = (
    "Lu",
    "Ver",
    "Aqua",
    "Der",
    "Sol",
    "Cal",
    "Pur",
    "Nor",
    "Ela",
    "Vita",
    "Bo",
    "Kin",
    "Mira",
    "Sera",
    "Ze",
)
BRAND_SUFFIXES: tuple[str, ...] = (
    "men",
    "ra",
    "lis",
    "ma",
    "tia",
    "vo",
    "na",
    "lune",
    "derm",
    "skin",
    "lab",
    "ore",
    "a",
)

SEARCH_TERMS_BY_CATEGORY: dict[str, str] = {
    "cleanser": "gentle cleanser",
    "toner": "toner",
    "serum": "serum",
    "moisturizer": "moisturizer",
    "sunscreen": "spf 50",
    "mask": "face mask",
    "eye cream": "eye cream",
    "exfoliant": "exfoliant",
    "face oil": "face oil",
    "lip balm": "lip balm",
}
