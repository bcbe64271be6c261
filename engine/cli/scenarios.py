"""`verdict bench`'s scenarios: what each is called, the questions it asks, and which llama.cpp
run it is compared with. Apart from `bench` so the command line can list them without MLX."""
from __future__ import annotations

QUESTIONS = [
    "Is this software a game?",
    "Is this software for scientific research?",
    "Is this a library for programmers?",
    "Does this software need a graphical desktop?",
    "Is this software about networking?",
]
# The scenarios `--scenario` names: what each is called in the output and the questions it asks
# (the rubric scenario also puts resources/bench/rubric.md before each document).
SCENARIOS = {"short": ("one short question", QUESTIONS[:1]),
             "probe": ("short, probe only", QUESTIONS[:1]),
             "rubric": ("long instructions", QUESTIONS[:1]),
             "five": ("five questions", QUESTIONS),
             "five-probe": ("five, probe only", QUESTIONS)}
DEFAULT_SCENARIOS = ("short", "probe", "rubric", "five", "five-probe")
PROBE_ONLY = ("probe", "five-probe")  # the engine alone, each prompt stopped at the probe's layer
# the scenario whose llama.cpp run a scenario is compared with (the same prompt tokens)
PEER_OF = {"short": "short", "probe": "short", "five": "five", "five-probe": "five"}
