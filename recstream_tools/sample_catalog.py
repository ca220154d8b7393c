"""A synthetic e-commerce catalogue for the demo, tests and benchmarks.

Pure and deterministic: the same ``n`` and ``seed`` give the same items, with no I/O and only
the standard library. Items are plain dicts in the wire format's ``item`` shape (see the design's
"Messages on the wire"). Each product type has its own vocabulary for titles and descriptions, so
that items of one type read alike and items of different top-level categories do not; this is
what makes the sample useful for judging neighbour lists by eye.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["CATEGORIES", "catalog_events", "sample_items"]


@dataclass(frozen=True)
class _ProductType:
    """One kind of product: where it sits in the tree and the words used to describe it."""

    path: tuple[str, ...]
    """Categories below the top-level one, broad to narrow."""
    titles: tuple[str, ...]
    """Title templates; placeholders are ``brand`` and the keys of ``attributes`` and ``words``."""
    sentences: tuple[str, ...]
    """Description sentences; the first always opens the description, 0-2 others follow."""
    price: tuple[float, float]
    attributes: Mapping[str, tuple[str, ...]]
    """Published in the item's ``attributes``."""
    words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Used in the text only."""


@dataclass(frozen=True)
class _Category:
    name: str
    brands: tuple[str, ...]
    types: tuple[_ProductType, ...]


_COLOURS = ("black", "white", "navy", "grey", "red", "olive", "beige", "burgundy", "sky blue")
_BRIGHT = ("red", "blue", "yellow", "green", "orange", "purple", "pink", "teal")
_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
_SHOE_SIZES = tuple(str(size) for size in range(36, 47))

_CLOTHING = _Category(
    "Clothing",
    ("Nordvik", "Acme Apparel", "Linea", "Urban Thread", "Bramble & Co"),
    (
        _ProductType(
            ("Men", "T-Shirts"),
            (
                "{brand} {fit} {material} T-shirt, {colour}",
                "{brand} {fit} crew-neck tee in {colour}",
            ),
            (
                "A {fit} crew-neck T-shirt cut from soft {material} for everyday wear.",
                "The breathable jersey keeps you cool and holds its shape wash after wash.",
                "Ribbed collar and double-stitched hems for a T-shirt that lasts.",
                "Pairs easily with jeans, chinos or shorts.",
            ),
            (9.0, 35.0),
            {
                "colour": _COLOURS,
                "material": ("cotton", "organic cotton", "cotton blend"),
                "size": _SIZES,
            },
            {"fit": ("regular-fit", "slim-fit", "relaxed-fit", "oversized")},
        ),
        _ProductType(
            ("Women", "Dresses"),
            ("{brand} {style} dress in {material}, {colour}", "{brand} {colour} {style} dress"),
            (
                "A {style} dress in flowing {material} with a flattering waist.",
                "Light enough for summer evenings and easy to dress up or down.",
                "Fully lined, with a concealed side zip and a midi-length hem.",
                "Wear it with sandals by day or heels for dinner.",
            ),
            (29.0, 120.0),
            {
                "colour": _COLOURS,
                "material": ("viscose", "linen", "satin", "cotton poplin"),
                "size": _SIZES,
            },
            {"style": ("wrap", "shirt", "slip", "tiered maxi", "A-line")},
        ),
        _ProductType(
            ("Men", "Jeans"),
            ("{brand} {fit} jeans, {colour} denim", "{brand} {fit} stretch denim jeans"),
            (
                "Five-pocket {fit} jeans in {colour} stretch denim.",
                "A touch of elastane gives freedom of movement without bagging at the knee.",
                "Classic zip fly, belt loops and a mid-rise waist.",
                "Stone washed for a soft, lived-in feel from the first wear.",
            ),
            (39.0, 110.0),
            {
                "colour": ("indigo", "light wash", "black", "raw"),
                "size": ("28", "30", "32", "34", "36"),
            },
            {"fit": ("slim", "straight", "tapered", "relaxed")},
        ),
        _ProductType(
            ("Shoes", "Sneakers"),
            ("{brand} {style} sneakers, {colour}", "{brand} {colour} {style} trainers"),
            (
                "{style} sneakers with a cushioned sole and a {material} upper.",
                "Padded collar and a grippy rubber outsole for all-day comfort in town.",
                "A clean silhouette that goes with jeans and joggers alike.",
            ),
            (45.0, 150.0),
            {
                "colour": _COLOURS,
                "material": ("leather", "canvas", "suede", "knit mesh"),
                "size": _SHOE_SIZES,
            },
            {"style": ("low-top", "high-top", "retro runner", "slip-on")},
        ),
    ),
)

_ELECTRONICS = _Category(
    "Electronics",
    ("Voltra", "Pixelon", "Sonique", "Kestrel Tech", "Orbit"),
    (
        _ProductType(
            ("Audio", "Headphones"),
            (
                "{brand} {kind} headphones with {feature}",
                "{brand} {kind} wireless headphones, {colour}",
            ),
            (
                "{kind} wireless headphones with {feature} and up to {hours} hours of battery.",
                "Bluetooth 5.3 pairs quickly with phones, tablets and laptops.",
                "Soft memory-foam cushions and a built-in microphone for calls.",
                "Fast charging over USB-C gives hours of playback from a few minutes on the cable.",
            ),
            (29.0, 349.0),
            {
                "colour": ("black", "white", "silver", "midnight blue"),
                "connectivity": ("Bluetooth 5.3",),
            },
            {
                "kind": ("over-ear", "on-ear", "in-ear", "sports in-ear"),
                "feature": (
                    "active noise cancelling",
                    "deep bass",
                    "transparency mode",
                    "spatial audio",
                ),
                "hours": ("20", "30", "40", "60"),
            },
        ),
        _ProductType(
            ("Computers", "Laptops"),
            ('{brand} {screen}" laptop, {cpu}, {ram} RAM', "{brand} {screen}-inch {kind} laptop"),
            (
                "A {screen}-inch {kind} laptop with a {cpu} processor and {ram} of RAM.",
                "The {storage} SSD boots in seconds and keeps your files close at hand.",
                "A full-HD display, backlit keyboard and all-day battery for work and study.",
                "Thunderbolt and HDMI ports connect monitors, docks and drives.",
            ),
            (449.0, 2199.0),
            {"ram": ("8 GB", "16 GB", "32 GB"), "storage": ("256 GB", "512 GB", "1 TB")},
            {
                "screen": ("13", "14", "15.6", "16"),
                "cpu": ("quad-core", "eight-core", "12-core"),
                "kind": ("lightweight", "business", "gaming", "2-in-1"),
            },
        ),
        _ProductType(
            ("Phones", "Smartphones"),
            (
                "{brand} {model} smartphone, {storage}, {colour}",
                "{brand} {model} 5G phone {storage}",
            ),
            (
                "The {model} smartphone has a {screen}-inch OLED screen and {storage} of storage.",
                "A triple camera shoots sharp photos in low light and 4K video.",
                "5G, dual SIM and a battery that lasts well into the next day.",
            ),
            (199.0, 1299.0),
            {
                "colour": ("black", "silver", "graphite", "green"),
                "storage": ("128 GB", "256 GB", "512 GB"),
            },
            {
                "model": ("X5", "Nova", "Edge Pro", "Lite 2", "Ultra"),
                "screen": ("6.1", "6.4", "6.7"),
            },
        ),
        _ProductType(
            ("Accessories", "Chargers"),
            ("{brand} {watts} W USB-C {kind}", "{brand} {watts} W fast {kind}"),
            (
                "A {watts} W USB-C {kind} that fast-charges phones, tablets and laptops.",
                "GaN technology keeps the charger small and cool.",
                "Built-in protection against overheating, over-current and short circuits.",
            ),
            (12.0, 79.0),
            {"colour": ("black", "white"), "ports": ("1", "2", "3")},
            {
                "watts": ("20", "30", "65", "100"),
                "kind": ("wall charger", "charging station", "car charger"),
            },
        ),
    ),
)

_HOME = _Category(
    "Home & Kitchen",
    ("Hearthly", "Casa Verde", "Kochwerk", "Maison Blanc", "Oakridge"),
    (
        _ProductType(
            ("Kitchen", "Cookware"),
            ("{brand} {material} {pan}, {diameter} cm", "{brand} {diameter} cm {material} {pan}"),
            (
                "A {diameter} cm {pan} in {material} for searing, sauteing and everyday cooking.",
                "Works on gas, electric and induction hobs and is oven safe.",
                "The riveted handle stays cool and gives a secure grip.",
                "Even heat distribution means no hot spots in the pan.",
            ),
            (19.0, 149.0),
            {"material": ("stainless steel", "cast iron", "non-stick aluminium", "carbon steel")},
            {
                "pan": ("frying pan", "saute pan", "wok", "casserole dish"),
                "diameter": ("20", "24", "28", "32"),
            },
        ),
        _ProductType(
            ("Kitchen", "Coffee"),
            ("{brand} {kind}, {colour}", "{brand} {colour} {kind} with {feature}"),
            (
                "A {kind} with {feature} for cafe-style coffee at home.",
                "Brews espresso, lungo and americano at the touch of a button.",
                "The removable water tank and drip tray make cleaning quick.",
            ),
            (49.0, 699.0),
            {"colour": ("black", "silver", "cream", "red")},
            {
                "kind": ("espresso machine", "filter coffee maker", "bean-to-cup coffee machine"),
                "feature": ("a milk frother", "a built-in grinder", "a programmable timer"),
            },
        ),
        _ProductType(
            ("Bedding", "Duvet Covers"),
            (
                "{brand} {material} duvet cover set, {bed}, {colour}",
                "{brand} {colour} {material} bedding set",
            ),
            (
                "A {material} duvet cover with matching pillowcases for a {bed} bed.",
                "Soft against the skin and breathable through the night.",
                "Hidden button closure and corner ties keep the duvet in place.",
                "Machine washable at 40 degrees and gets softer with every wash.",
            ),
            (25.0, 140.0),
            {
                "colour": ("white", "grey", "sage", "blush pink", "navy"),
                "material": ("cotton percale", "linen", "cotton sateen", "brushed cotton"),
                "bed": ("single", "double", "king"),
            },
        ),
        _ProductType(
            ("Furniture", "Lighting"),
            ("{brand} {style} {lamp}, {colour}", "{brand} {colour} {lamp} with {material} shade"),
            (
                "A {style} {lamp} with a {material} shade that casts a warm, even light.",
                "Takes a standard E27 bulb and has an inline switch on the cable.",
                "Brings a soft glow to living rooms, bedrooms and reading corners.",
            ),
            (25.0, 220.0),
            {
                "colour": ("black", "brass", "white", "natural"),
                "material": ("linen", "rattan", "glass", "metal"),
            },
            {
                "lamp": ("table lamp", "floor lamp", "pendant light"),
                "style": ("Scandinavian", "industrial", "mid-century"),
            },
        ),
    ),
)

_SPORTS = _Category(
    "Sports & Outdoors",
    ("Summitline", "Trailhawk", "Pace", "Fjellgear", "Aquaro"),
    (
        _ProductType(
            ("Camping", "Tents"),
            (
                "{brand} {capacity}-person {kind} tent",
                "{brand} {kind} tent for {capacity}, {colour}",
            ),
            (
                "A {kind} tent that sleeps {capacity}, with a waterproof flysheet and taped seams.",
                "Colour-coded poles make pitching quick, even in wind and rain.",
                "Two doors, mesh vents and a porch for boots and packs.",
                "Packs down small into its own stuff sack for backpacking trips.",
            ),
            (59.0, 499.0),
            {"colour": ("green", "orange", "grey", "sand"), "capacity": ("2", "3", "4", "6")},
            {"kind": ("dome", "tunnel", "backpacking", "family")},
        ),
        _ProductType(
            ("Running", "Running Shoes"),
            ("{brand} {kind} running shoes, {colour}", "{brand} {colour} {kind} running shoe"),
            (
                "{kind} running shoes with responsive foam cushioning and a breathable mesh upper.",
                "A durable rubber outsole grips on road, track and light trail.",
                "The padded heel counter locks the foot in place over long runs.",
            ),
            (59.0, 189.0),
            {"colour": _BRIGHT, "size": _SHOE_SIZES},
            {"kind": ("road", "trail", "race-day", "stability")},
        ),
        _ProductType(
            ("Fitness", "Yoga"),
            (
                "{brand} {thickness} mm yoga mat, {colour}",
                "{brand} {material} yoga mat in {colour}",
            ),
            (
                "A {thickness} mm yoga mat in {material} with a non-slip textured surface.",
                "Cushions knees and wrists through yoga, pilates and stretching.",
                "Light enough to carry to class, with a strap included.",
            ),
            (15.0, 89.0),
            {
                "colour": ("purple", "teal", "black", "coral", "sage"),
                "material": ("TPE", "natural rubber", "cork"),
            },
            {"thickness": ("4", "6", "8")},
        ),
        _ProductType(
            ("Cycling", "Helmets"),
            ("{brand} {kind} bike helmet, {colour}", "{brand} {colour} {kind} cycling helmet"),
            (
                "A lightweight {kind} bike helmet with an in-moulded shell and {vents} vents.",
                "A dial at the back adjusts the fit in seconds.",
                "Meets the EN 1078 safety standard for cycling helmets.",
            ),
            (29.0, 199.0),
            {"colour": ("matte black", "white", "red", "neon yellow"), "size": ("S", "M", "L")},
            {"kind": ("road", "mountain bike", "commuter"), "vents": ("12", "18", "24")},
        ),
    ),
)

_BEAUTY = _Category(
    "Beauty",
    ("Lumiere", "Botanica", "Dermaclar", "Rosewell", "Velvetine"),
    (
        _ProductType(
            ("Skin Care", "Moisturisers"),
            ("{brand} {ingredient} {cream}, {volume} ml", "{brand} {cream} with {ingredient}"),
            (
                "A {cream} with {ingredient} that hydrates and smooths {skin_type} skin.",
                "Absorbs quickly without a greasy finish, morning and night.",
                "Dermatologist tested and free from parabens.",
            ),
            (8.0, 69.0),
            {"volume": ("30", "50", "100"), "skin_type": ("dry", "oily", "sensitive", "normal")},
            {
                "cream": ("face cream", "night cream", "day moisturiser", "gel cream"),
                "ingredient": ("hyaluronic acid", "vitamin C", "niacinamide", "shea butter"),
            },
        ),
        _ProductType(
            ("Hair Care", "Shampoo"),
            (
                "{brand} {benefit} shampoo, {volume} ml",
                "{brand} {ingredient} shampoo for {hair} hair",
            ),
            (
                "A {benefit} shampoo with {ingredient} for {hair} hair.",
                "Cleanses gently and leaves hair soft, shiny and easy to comb.",
                "Sulphate free and suitable for colour-treated hair.",
            ),
            (5.0, 29.0),
            {"volume": ("250", "400", "1000")},
            {
                "benefit": ("volumising", "repairing", "moisturising", "anti-dandruff"),
                "ingredient": ("argan oil", "keratin", "tea tree", "coconut"),
                "hair": ("fine", "curly", "damaged", "dry"),
            },
        ),
        _ProductType(
            ("Makeup", "Lipstick"),
            ("{brand} {finish} lipstick, {shade}", "{brand} {shade} {finish} lipstick"),
            (
                "A {finish} lipstick in {shade} with rich, long-lasting colour.",
                "Enriched with vitamin E to keep lips soft.",
                "A slim bullet that glides on evenly in one stroke.",
            ),
            (6.0, 39.0),
            {
                "shade": ("Ruby Red", "Nude Rose", "Berry", "Coral", "Mauve"),
                "finish": ("matte", "satin", "gloss"),
            },
        ),
    ),
)

_TOYS = _Category(
    "Toys & Games",
    ("Playmoor", "Brickwise", "Tumbletoy", "Puzzlecraft", "Little Oak"),
    (
        _ProductType(
            ("Building Toys", "Construction Sets"),
            (
                "{brand} {theme} building set, {pieces} pieces",
                "{brand} {theme} bricks kit ({pieces} pcs)",
            ),
            (
                "A {theme} building set with {pieces} interlocking bricks for ages {age}.",
                "Clear instructions guide young builders, then the bricks are free to remix.",
                "Compatible with other major brick brands.",
            ),
            (14.0, 149.0),
            {"pieces": ("150", "300", "650", "1200"), "age": ("6+", "8+", "12+")},
            {"theme": ("space station", "fire station", "pirate ship", "castle", "race car")},
        ),
        _ProductType(
            ("Games", "Board Games"),
            (
                "{brand} {name}: a {kind} board game",
                "{brand} {name} board game for {players} players",
            ),
            (
                "{name} is a {kind} board game for {players} players, {minutes} minutes a game.",
                "Easy to learn for family game night, with enough strategy to keep adults hooked.",
                "Includes a game board, cards, wooden tokens and a rule book.",
            ),
            (15.0, 69.0),
            {"players": ("2-4", "2-6", "3-5"), "age": ("8+", "10+", "14+")},
            {
                "name": (
                    "Harbour Lights",
                    "Dragon Valley",
                    "Trade Winds",
                    "Mystic Grove",
                    "Star Courier",
                ),
                "kind": ("strategy", "cooperative", "party", "deck-building"),
                "minutes": ("30", "45", "60", "90"),
            },
        ),
        _ProductType(
            ("Puzzles", "Jigsaw Puzzles"),
            (
                "{brand} {pieces}-piece jigsaw puzzle: {scene}",
                "{brand} {scene} jigsaw, {pieces} pieces",
            ),
            (
                "A {pieces}-piece jigsaw puzzle of {scene} printed on thick, glare-free board.",
                "Every piece is uniquely cut, so pieces fit snugly together.",
                "Comes with a reference poster of the finished picture.",
            ),
            (9.0, 35.0),
            {"pieces": ("500", "1000", "1500", "2000"), "age": ("10+", "12+")},
            {
                "scene": (
                    "a Venetian canal",
                    "an alpine lake",
                    "a cottage garden",
                    "a starry night sky",
                )
            },
        ),
        _ProductType(
            ("Soft Toys", "Plush"),
            ("{brand} plush {animal}, {height} cm", "{brand} cuddly {animal} soft toy"),
            (
                "A cuddly plush {animal} made from super-soft fabric, {height} cm tall.",
                "Safety-tested embroidered eyes make it suitable from birth.",
                "Surface washable and soft enough to be a favourite bedtime friend.",
            ),
            (9.0, 45.0),
            {"height": ("20", "30", "45")},
            {"animal": ("teddy bear", "bunny", "elephant", "unicorn", "dinosaur", "fox")},
        ),
    ),
)

_BOOKS = _Category(
    "Books",
    ("Harbour Press", "Quillstone", "Penwright Books", "Northlight Publishing"),
    (
        _ProductType(
            ("Fiction", "Crime & Thriller"),
            ("{title_start} {title_end}: A Novel", "{title_start} {title_end}"),
            (
                "A gripping {genre} novel by {author}: an investigator races to solve {case}.",
                "Twisty, fast-paced and impossible to put down.",
                "The first book in a bestselling series set in {city}.",
            ),
            (7.0, 22.0),
            {
                "format": ("Paperback", "Hardcover", "Ebook"),
                "language": ("English",),
                "author": ("Maren Holt", "J. P. Calder", "Ines Lindqvist", "Tom Ashdown"),
            },
            {
                "title_start": ("The Silent", "The Last", "Cold", "The Hidden", "Midnight"),
                "title_end": ("Witness", "Harbour", "Verdict", "Alibi", "Crossing"),
                "genre": ("crime", "psychological thriller", "detective"),
                "case": ("a string of murders", "a missing person case", "a decades-old killing"),
                "city": ("Edinburgh", "Oslo", "Dublin", "Marseille"),
            },
        ),
        _ProductType(
            ("Non-Fiction", "Cookbooks"),
            ("{cuisine} {title_end}: {count} Recipes", "The {cuisine} Kitchen"),
            (
                "A cookbook of {count} {cuisine} recipes for everyday meals and weekend feasts.",
                "Clear step-by-step instructions with a full-colour photograph for every dish.",
                "Includes chapters on vegetarian dishes, desserts and cooking for a crowd.",
            ),
            (12.0, 35.0),
            {
                "format": ("Hardcover", "Paperback"),
                "language": ("English",),
                "author": ("Giulia Ferri", "Kenji Mori", "Layla Haddad", "Sophie Marchand"),
            },
            {
                "cuisine": ("Italian", "Japanese", "Middle Eastern", "Mexican", "French", "Indian"),
                "title_end": ("Home Cooking", "Made Simple", "Family Table"),
                "count": ("80", "100", "120"),
            },
        ),
        _ProductType(
            ("Children's Books", "Picture Books"),
            ("Little {animal} and the {thing}", "{animal}'s {thing} Adventure"),
            (
                "A picture book about Little {animal} and the {thing}, for children aged {age}.",
                "Bright illustrations and rhyming text, perfect for reading aloud at bedtime.",
                "A warm story about friendship, courage and being yourself.",
            ),
            (5.0, 15.0),
            {
                "format": ("Hardcover", "Paperback", "Board book"),
                "age": ("2 to 5", "3 to 6"),
                "author": ("Poppy Lark", "Ben Whitby", "Nora Fenn"),
            },
            {
                "animal": ("Fox", "Owl", "Hedgehog", "Bear", "Otter"),
                "thing": ("Moon", "Big Storm", "Secret Garden", "Lost Star"),
            },
        ),
    ),
)

_GARDEN = _Category(
    "Garden",
    ("Greenfield", "Hortus", "Bloomcraft", "Yardline"),
    (
        _ProductType(
            ("Garden Tools", "Hand Tools"),
            ("{brand} {material} {tool}", "{brand} {tool} with {handle} handle"),
            (
                "A {tool} with a {material} blade and a comfortable {handle} handle.",
                "Built for digging, weeding and planting in beds, borders and pots.",
                "Rust resistant and strong enough for heavy clay soil.",
            ),
            (8.0, 49.0),
            {"material": ("stainless steel", "carbon steel"), "handle": ("ash wood", "soft-grip")},
            {
                "tool": (
                    "hand trowel",
                    "garden fork",
                    "pruning shears",
                    "hand weeder",
                    "border spade",
                )
            },
        ),
        _ProductType(
            ("Watering", "Hoses"),
            (
                "{brand} {length} m {kind} garden hose",
                "{brand} {kind} hose with spray gun, {length} m",
            ),
            (
                "A {length} m {kind} garden hose with a multi-pattern spray gun.",
                "Kink resistant and UV stabilised for years of watering in the sun.",
                "Snap-on connectors fit standard outdoor taps.",
            ),
            (15.0, 89.0),
            {"length": ("15", "25", "30", "50"), "colour": ("green", "black", "blue")},
            {"kind": ("expandable", "reinforced", "lightweight")},
        ),
        _ProductType(
            ("Plants & Seeds", "Seeds"),
            ("{brand} {plant} seeds, {variety}", "{brand} organic {plant} seeds ({count} seeds)"),
            (
                "{variety} {plant} seeds for sowing {season}, about {count} seeds per packet.",
                "Easy to grow in beds, containers or a greenhouse.",
                "Germination tested, with sowing and growing instructions on the packet.",
            ),
            (2.0, 8.0),
            {"sowing": ("indoors", "outdoors"), "organic": ("yes", "no")},
            {
                "plant": ("tomato", "sunflower", "basil", "carrot", "sweet pea", "lettuce"),
                "variety": ("Heirloom", "Dwarf", "Giant", "Early"),
                "season": ("in spring", "from March to May", "in late summer"),
                "count": ("25", "50", "200"),
            },
        ),
        _ProductType(
            ("Outdoor Furniture", "Garden Seating"),
            ("{brand} {material} {seat}, {colour}", "{brand} {seat} in weatherproof {material}"),
            (
                "A {seat} in weatherproof {material} for patios, balconies and decks.",
                "Cushions with removable, water-repellent covers are included.",
                "Stands up to rain and sun all season long.",
            ),
            (49.0, 899.0),
            {
                "material": ("acacia wood", "rattan", "aluminium", "teak"),
                "colour": ("natural", "grey", "black"),
            },
            {"seat": ("garden bench", "bistro set", "lounge chair", "corner sofa set")},
        ),
    ),
)

_PETS = _Category(
    "Pet Supplies",
    ("Pawsome", "Whisker & Tail", "Happy Hound", "Furloft"),
    (
        _ProductType(
            ("Dogs", "Dog Beds"),
            ("{brand} {kind} dog bed, {size}", "{brand} {colour} {kind} bed for dogs"),
            (
                "A {kind} dog bed with a raised rim for dogs that like to curl up.",
                "The removable cover is machine washable and the base is non-slip.",
                "Filled with supportive foam that is gentle on older joints.",
            ),
            (19.0, 129.0),
            {"size": ("S", "M", "L", "XL"), "colour": ("grey", "brown", "navy", "beige")},
            {"kind": ("orthopaedic", "donut", "memory foam", "waterproof")},
        ),
        _ProductType(
            ("Cats", "Cat Toys"),
            ("{brand} {toy} for cats", "{brand} interactive {toy}"),
            (
                "An interactive {toy} that keeps indoor cats active and entertained.",
                "Filled with catnip to spark play in even the laziest cat.",
                "Made from pet-safe, non-toxic materials.",
            ),
            (4.0, 39.0),
            {"colour": _BRIGHT},
            {"toy": ("feather wand", "laser chase toy", "catnip mouse set", "ball track tower")},
        ),
        _ProductType(
            ("Dogs", "Dog Food"),
            ("{brand} {recipe} dry dog food, {weight} kg", "{brand} grain-free {recipe} kibble"),
            (
                "Complete dry food for {life_stage} dogs, with {recipe} as the first ingredient.",
                "Added omega-3 and omega-6 support a healthy skin and a shiny coat.",
                "No artificial colours, flavours or preservatives.",
            ),
            (12.0, 79.0),
            {"weight": ("2", "6", "12"), "life_stage": ("puppy", "adult", "senior")},
            {"recipe": ("chicken and rice", "salmon and potato", "lamb", "turkey")},
        ),
    ),
)

_ALL = (_CLOTHING, _ELECTRONICS, _HOME, _SPORTS, _BEAUTY, _TOYS, _BOOKS, _GARDEN, _PETS)

CATEGORIES: tuple[str, ...] = tuple(category.name for category in _ALL)
"""The top-level categories the sample spreads items over."""


def _pick(rng: random.Random, choices: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {key: rng.choice(values) for key, values in choices.items()}


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


# "a" before a vowel sound, for the templates' "A {kind} ..." (no slot value starts with "u").
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeioAEIO]|8|18\b|11\b)")


def _articles(text: str) -> str:
    return _ARTICLE.sub(lambda match: match.group(1) + "n ", text)


def _price(rng: random.Random, low: float, high: float) -> float:
    # Shop prices end in .99 or .49; never below the low end of the range.
    whole = int(rng.uniform(low, high))
    return round(max(whole, 1) + rng.choice((0.49, 0.99)), 2)


def _item(rng: random.Random, index: int, category: _Category) -> dict[str, Any]:
    kind: _ProductType = rng.choice(category.types)
    attributes = _pick(rng, kind.attributes)
    slots = {"brand": rng.choice(category.brands), **attributes, **_pick(rng, kind.words)}
    extra = rng.sample(kind.sentences[1:], k=rng.randint(0, min(2, len(kind.sentences) - 1)))
    sentences = (_sentence_case(s.format(**slots)) for s in (kind.sentences[0], *extra))
    description = _articles(" ".join(sentences))
    item: dict[str, Any] = {
        "item_id": f"sku-{index:06d}",
        "title": rng.choice(kind.titles).format(**slots),
        "description": description,
        "brand": slots["brand"],
        "categories": [category.name, *kind.path],
        "price": _price(rng, *kind.price),
        "currency": "EUR",
        "in_stock": rng.random() < 0.9,
        "attributes": attributes,
    }
    return item


def sample_items(n: int = 1200, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` catalogue items (wire-format ``item`` dicts), the same for the same ``seed``.

    Items are spread evenly over :data:`CATEGORIES` (sizes differ by at most one) in a shuffled
    order; ids are ``sku-000001`` upwards.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, not {n}")
    rng = random.Random(seed)
    assignment = [_ALL[i % len(_ALL)] for i in range(n)]
    rng.shuffle(assignment)
    return [_item(rng, index, category) for index, category in enumerate(assignment, start=1)]


def _iso_z(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    timespec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def catalog_events(
    items: Sequence[Mapping[str, Any]],
    start: datetime,
    step: timedelta = timedelta(seconds=1),
) -> list[dict[str, Any]]:
    """``item.created`` events (version 1) for ``items``, ``step`` apart from ``start``.

    A naive ``start`` is taken as UTC. Event ids derive from item ids, so publishing the same
    catalogue twice yields the same ids. Each event holds its own copy of the item.
    """
    return [
        {
            "type": "item.created",
            "event_id": f"e-{item['item_id']}-v1",
            "occurred_at": _iso_z(start + step * position),
            "version": 1,
            "item": copy.deepcopy(dict(item)),
        }
        for position, item in enumerate(items)
    ]
