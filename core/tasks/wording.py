"""The user's words, offline: openings, request frames, closings, and grammatical tidying.

The task generator composes a first message from intent phrases (the blueprint's ``intent``) and
how the user refers to each record. This module gives it several phrasings for each part, picked
with the attempt's seeded RNG (so a task is still a function of its seed), and tidies the result:
"a"/"an", "1 parcels", "the fines of me", "the unclaimed my fill", a word said twice.

Refusals and other tasks are phrased from the same lists: nothing in the wording may tell an agent
which requests will turn out impossible (``bench/validity.py`` measures it as ``refusal_auc``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

# the persona's greeting; {name} the customer's name
CUSTOMER_OPENINGS = (
    "Hi, I'm {name}.", "Hello, this is {name}.", "Hi, {name} here.", "Good morning, my name is {name}.",
    "Hello, my name is {name}.", "Hi there.", "Hello.", "Good morning.", "Hi, I hope you can help me.",
    "Hello, I have a question.", "",
)
# a member of staff always says so: the policy lets staff ask for what customers may not
STAFF_OPENINGS = (
    "Hi, this is {name}, {a_role}.", "Hello, {name} here; I'm {a_role}.", "Hi, it's {name} ({role}).",
    "Good morning, {name} speaking, {a_role}.", "Hello, I'm {name}, {a_role} here.",
)
# someone who gives no name and acts on no customer's record
ANONYMOUS_OPENINGS = ("Hi there.", "Hello.", "Good morning.", "Hi, I hope you can help me.",
                      "Hello, I have a question.", "")

# how the request is framed; {goal} is one or more intent phrases
FRAMES = (
    "I'd like to {goal}.", "Could you {goal}?", "I need to {goal}.", "Can you help me {goal}?",
    "Please {goal}.", "I'm calling to {goal}.", "I want to {goal}.", "Would you {goal}, please?",
)
# how several goals are joined; {a} the first, {b} the rest
CHAINS = ("first {a}, then {b}", "{a}, and then {b}", "{a}, and after that {b}", "{a}, then {b}")
LATER = (", then ", ", and then ", ", and after that ")
# what the user wants to be told; {nouns} the columns' nouns
CLOSINGS = (
    "Please tell me the {nouns}.", "Could you let me know the {nouns}?", "Let me know the {nouns}, please.",
    "And please tell me the {nouns}.", "I'd like to know the {nouns} afterwards.", "Tell me the {nouns}, please.",
)
# how the user acts (Scenario.behaviour): what a user simulator, scripted or a model, is told
BEHAVIOUR = ("Answer the agent's questions from what you know, and say you don't know anything else. "
             "Do not volunteer facts before you are asked. Confirm when the agent asks before making a change. "
             "Once you have been told the outcome, end the conversation.")


def article(word: str) -> str:
    """"a" or "an" for ``word`` (by its sound, for the usual English cases)."""
    w = word.lower()
    if re.match(r"(one|uni|use|usu|eu|ewe|u[bcfgklmrst][aeiou])", w):
        return "a"
    if re.match(r"(hour|honest|honou?r|heir)", w):
        return "an"
    if re.match(r"[A-Z]{2,}", word):  # an acronym: said letter by letter ("an SMS", "a PDF")
        return "an" if word[0] in "AEFHILMNORSX" else "a"
    return "an" if w[:1] in ("a", "e", "i", "o", "u") else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}" if phrase else phrase


def join_nouns(nouns: Sequence[str]) -> str:
    """"balance", "balance and rental id", "a, b and the c" (each after the first gets "the")."""
    nouns = list(dict.fromkeys(nouns))
    if len(nouns) <= 1:
        return "".join(nouns)
    return ", the ".join(nouns[:-1]) + " and the " + nouns[-1]


def plural(noun: str) -> str:
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    return noun + "s"


def chain(rng: random.Random, phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    head = rng.choice(CHAINS)
    rest = phrases[1]
    for p in phrases[2:]:
        rest += rng.choice(LATER) + p
    return head.format(a=phrases[0], b=rest)


def request(rng: random.Random, goal: str) -> str:
    return rng.choice(FRAMES).format(goal=goal)


_A_AN = re.compile(r"\b([Aa])n? (?=([\w-]+))")
_ONE_PLURAL = re.compile(r"\b1 ([a-z]+[^s])s\b")
_OF_ME = re.compile(r"\bthe ((?:[a-z]+ ){0,2}?[a-z]+) of me\b")
_PREP = "(?!(?:of|for|to|on|in|at|with|from|by|and|or|is|are)\\b)"
_DETERMINER_MY = re.compile(r"\b(?:the|a|an) ((?:" + _PREP + r"[a-z]+ ){1,2}?)my ")
_TWICE = re.compile(r"\b([a-z]{3,}) \1\b")


def tidy(text: str) -> str:
    """Grammar the templates get wrong: articles, "1 parcels", "the fines of me", "the unclaimed my
    fill", a word said twice, spaces before punctuation."""
    text = _OF_ME.sub(r"my \1", text)
    text = re.sub(r"\b(?:the|a|an) (my|one of my)\b", r"\1", text)  # "cancel the my parcel"
    text = _DETERMINER_MY.sub(r"my \1", text)
    text = _ONE_PLURAL.sub(r"1 \1", text)
    text = _TWICE.sub(r"\1", text)
    text = _A_AN.sub(lambda m: (m.group(1) if article(m.group(2)) == "a" else m.group(1) + "n") + " ", text)
    text = re.sub(r"\s+([,.?!;])", r"\1", text)
    text = re.sub(r"\s{2,}", " ", text).strip()
    return text[:1].upper() + text[1:]
