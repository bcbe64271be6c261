#!/usr/bin/env python3
"""Write the obvious case: 100 payment requests and 100 recipes, made from templates with a fixed
seed, as JSONL with `id`, `text` and the answers to the two questions (`labels`).

  python scripts/make_obvious_case.py [--out resources/bench/obvious.jsonl] [--count 100]

Payment requests: invoices, reminders, renewals, fines and bills from varied senders, amounts,
currencies and deadlines. Recipes: dishes with ingredients, quantities and steps. Nothing in the
texts names the question; the labels follow from which generator wrote the text.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAY = "Does this ask the reader to pay money?"
FOOD = "Is this about food or cooking?"

SENDERS = ["Northwind Utilities", "City of Arlen Parking Services", "Brightline Internet", "Dr. Mei Lin's Dental Practice",
           "Oakridge Property Management", "Harbor Gym", "Kestrel Insurance", "The Daily Ledger", "Summit Water Co.",
           "Riverside Veterinary Clinic", "Apex Software Ltd", "Greenfield School District", "Metro Transit Authority",
           "Atlas Storage Units", "Lumen Electric", "Pine Valley Golf Club", "Cobalt Mobile", "St. Anne's Hospital"]
WHAT = ["invoice", "statement", "membership renewal", "parking fine", "subscription", "service charge", "annual fee",
        "utility bill", "outstanding balance", "rent", "repair estimate", "tuition instalment"]
CURRENCIES = ["EUR", "USD", "GBP", "CHF", "$", "€", "£"]
DEADLINES = ["by Friday", "within 14 days", "before the end of the month", "by 30 June", "no later than 5 March",
             "within 7 days of this notice", "by the due date shown below", "immediately"]
HOW = ["by bank transfer to the account below", "online at our payment portal", "by card over the phone",
       "with the enclosed payment slip", "through your banking app using the reference above", "by direct debit"]
CONSEQUENCE = ["A late fee of {c}{fee} will be added after that date.", "Unpaid balances may be passed to a collection agency.",
               "Your service may be suspended if payment is not received.", "Thank you for your prompt attention.",
               "If you have already paid, please ignore this reminder.", "Interest accrues at 2% per month on late payments."]

DISHES = ["lemon tart", "mushroom risotto", "chicken curry", "banana bread", "tomato soup", "beef stew", "pad thai",
          "apple crumble", "vegetable lasagne", "shakshuka", "pancakes", "falafel", "miso ramen", "carrot cake",
          "paella", "guacamole", "gnocchi with sage butter", "lentil dal", "fish tacos", "chocolate mousse"]
INGREDIENTS = ["flour", "butter", "sugar", "eggs", "milk", "onions", "garlic", "olive oil", "salt", "black pepper",
               "tomatoes", "rice", "chicken thighs", "lemons", "fresh basil", "cumin", "paprika", "potatoes",
               "carrots", "coconut milk", "ginger", "parmesan", "chickpeas", "yoghurt", "honey", "cinnamon"]
UNITS = ["g", "ml", "tbsp", "tsp", "cups", "pinch of", "cloves", ""]
STEPS = ["Preheat the oven to {t} degrees.", "Chop the {a} finely and fry in a little oil until soft.",
         "Whisk the {a} and {b} together in a large bowl.", "Simmer gently for {m} minutes, stirring now and then.",
         "Fold in the {a} and season with salt.", "Bake for {m} minutes until golden.", "Let it rest for {m} minutes before serving.",
         "Blend until smooth and taste for seasoning.", "Knead the dough for {m} minutes.", "Serve warm with a squeeze of lemon."]


def payment(rng: random.Random, n: int) -> str:
    sender, what, c = rng.choice(SENDERS), rng.choice(WHAT), rng.choice(CURRENCIES)
    amount = f"{rng.randint(12, 2400)}.{rng.randint(0, 99):02d}"
    ref = f"{rng.choice('ABCDEFGH')}{rng.randint(1000, 99999)}"
    lines = [
        f"{sender}",
        rng.choice([f"Re: your {what}, reference {ref}", f"{what.capitalize()} no. {ref}", f"Payment reminder ({ref})"]),
        "",
        rng.choice(["Dear customer,", "Hello,", f"Dear account holder {rng.randint(100, 999)},", "To whom it may concern,"]),
        f"Our records show an amount of {c}{amount} due for your {what}. Please pay {rng.choice(DEADLINES)} "
        f"{rng.choice(HOW)}.",
        rng.choice(CONSEQUENCE).format(c=c, fee=rng.randint(5, 40)),
        rng.choice(["Kind regards,", "Sincerely,", "Best wishes,"]) + f" Accounts team, {sender}",
    ]
    return "\n".join(lines)


def recipe(rng: random.Random, n: int) -> str:
    dish = rng.choice(DISHES)
    items = rng.sample(INGREDIENTS, rng.randint(4, 8))
    ingredients = [f"- {rng.randint(1, 500)} {rng.choice(UNITS)} {item}".replace("  ", " ") for item in items]
    steps = [rng.choice(STEPS).format(t=rng.choice([160, 180, 200, 220]), m=rng.randint(5, 45),
                                      a=rng.choice(items), b=rng.choice(items)) for _ in range(rng.randint(3, 6))]
    lines = [rng.choice([f"{dish.capitalize()}", f"Easy {dish}", f"My grandmother's {dish}", f"{dish.capitalize()} for {rng.randint(2, 8)}"]),
             f"Serves {rng.randint(2, 8)}. Preparation {rng.randint(10, 40)} minutes.", "", "Ingredients:", *ingredients,
             "", "Method:", *[f"{i + 1}. {s}" for i, s in enumerate(steps)]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "resources" / "bench" / "obvious.jsonl"))
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = [{"id": f"pay-{i:03d}", "text": payment(rng, i), "labels": {PAY: True, FOOD: False}} for i in range(args.count)]
    rows += [{"id": f"recipe-{i:03d}", "text": recipe(rng, i), "labels": {PAY: False, FOOD: True}} for i in range(args.count)]
    rng.shuffle(rows)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} documents to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
