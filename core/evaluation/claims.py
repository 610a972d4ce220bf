"""What the agent claims about the outcome, checked by rules over its words (no model).

On a refused task the agent must say the request could not be done and must not claim the refused
goal was done; a goal that was done must not be reported as not done. :func:`claim_rules` compiles
the rules of one task (its outcome and the goals' intent phrases) once; :func:`check_claims` gives
the reasons a text breaks them (empty: the claims hold). ``docs/tasks.md`` ("Claims") documents
the word lists and their limits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# ---------------------------------------------------------------------- claims
#
# What the agent says about the outcome, checked by rules over its words (no model). The text is
# the agent's report (core.evaluation.reward.report_text: what it said after its last tool call),
# lower-cased, with "can't"/"cannot" as "can not", "won't" as "will not" and every other "n't" as
# " not" (_claim_text). A clause is a stretch of text between
# [.!?;:()] or a line break, also cut at "but", "however", "although", "though", "whereas",
# "because" and "instead", so "I suspended you, but I could not reinstate you" is two clauses.

# the agent says the request could not be done ("not X" also matches "not be X", "not been X")
REFUSAL_WORDS = ("can not", "could not", "unable", "impossible", "failed", "not able", "not possible",
                 "not allowed", "not permitted", "not eligible", "did not go through", "will not go through")
# in a clause, these make a past form of the refused goal's verb no claim of success
NEGATIONS = frozenset({"not", "no", "never", "nothing", "none", "nobody", "neither", "nor", "unable",
                       "impossible", "failed", "already", "tried", "attempted"})
# the same when one of these stands in the two words before it ("it can be booked", "to be booked")
HYPOTHETICAL = frozenset({"can", "could", "will", "would", "shall", "should", "may", "might", "must", "to", "if",
                          "once", "unless", "until", "when", "whether", "want", "wants", "wanted", "like", "need",
                          "needs", "please", "let"})
# words skipped when looking for those two: "it can only be booked", "can just be recorded"
ADVERBS = frozenset({"only", "just", "also", "ever", "still", "first", "then", "really", "actually", "currently"})
# success said without the goal's verb; a claim only when the refused goal is the task's only goal
GENERIC_DONE = ("successfully", "successful", "success", "all set", "went through", "gone through",
                "taken care of", "processed", "done")
# "not" (or never, unable, impossible, failed), then any of these words, then a goal's verb:
# the goal reported as not done ("could not rent", "was not able to rent", "has not been rented")
NOT_MARKS = ("not", "never", "unable", "impossible", "failed")
FILLERS = ("to", "be", "been", "being", "have", "had", "get", "got", "able", "allowed", "permitted", "possible",
           "yet", "actually", "currently", "really", "even", "successfully", "also", "quite", "fully")
# what "I could not do that" says: a refusal of the request without naming a goal
GENERIC_ACTIONS = ("do", "help", "process", "complete", "proceed", "fulfil", "fulfill", "finish", "handle",
                   "perform", "go through")
PARTICLES = frozenset({"in", "out", "up", "off", "down", "back", "away"})

_IRREGULAR = {"buy": ("bought",), "pay": ("paid",), "sell": ("sold",), "send": ("sent",), "lend": ("lent",),
              "hold": ("held",), "draw": ("drew", "drawn"), "put": ("put",), "set": ("set",),
              "get": ("got", "gotten"), "give": ("gave", "given"), "take": ("took", "taken"), "make": ("made",),
              "find": ("found",), "leave": ("left",), "bring": ("brought",), "keep": ("kept",), "lose": ("lost",),
              "run": ("ran", "run"), "begin": ("began", "begun"), "spend": ("spent",), "build": ("built",),
              "tell": ("told",), "do": ("did", "done"), "go": ("went", "gone"), "write": ("wrote", "written"),
              "break": ("broke", "broken"), "choose": ("chose", "chosen"), "freeze": ("froze", "frozen"),
              "read": ("read",), "cut": ("cut",), "shut": ("shut",), "let": ("let",), "feed": ("fed",),
              "meet": ("met",), "sit": ("sat",), "stand": ("stood",), "split": ("split",), "deal": ("dealt",)}
_PREFIXES = ("re", "pre", "over", "under", "with", "out", "up", "mis")
_OBJECT_SKIP = frozenset({"a", "an", "the", "as", "new", "for", "of", "to", "on", "in", "at", "by", "with", "from",
                          "into", "that", "how", "and", "my", "your", "its", "their", "this", "up", "out"})


def past_forms(verb: str) -> tuple[str, ...]:
    """The past tense and participle of an intent's verb, the usual one first (rent: rented; pay: paid).

    Regular verbs by spelling; a final consonant after one vowel gives both spellings (cancel:
    canceled, cancelled); irregular verbs from a table, also after re-, pre-, over-, under-,
    with-, out-, up- and mis- (withdraw: withdrew, withdrawn)."""
    v = verb.casefold()
    if v in _IRREGULAR:
        return _IRREGULAR[v]
    for pre in _PREFIXES:
        if v.startswith(pre) and v[len(pre):] in _IRREGULAR:
            return tuple(pre + f for f in _IRREGULAR[v[len(pre):]])
    if v.endswith("e"):
        return (v + "d",)
    if len(v) > 1 and v.endswith("y") and v[-2] not in "aeiou":
        return (v[:-1] + "ied",)
    if re.search(r"(?:^|[^aeiou])[aeiou][^aeiouwxy]$", v):
        # doubled for one syllable and stressed endings (drop, admit, transfer, cancel), else plain (open)
        doubled = len(re.findall(r"[aeiouy]+", v)) == 1 or v.endswith(("mit", "fer", "cur", "pel", "l"))
        return (v + v[-1] + "ed", v + "ed") if doubled else (v + "ed", v + v[-1] + "ed")
    return (v + "ed",)


def intent_verb(intent: str) -> tuple[str, str]:
    """The verb of an operation's intent phrase, and its particle if one follows it.

    "rent bike {bike_id}" -> ("rent", ""); "check in guest {guest_id}" -> ("check", "in")."""
    words = re.findall(r"\{\w+\}|[a-z][a-z'-]*", intent.casefold())
    if not words or words[0].startswith("{"):
        return "", ""
    return words[0], words[1] if len(words) > 1 and words[1] in PARTICLES else ""


def intent_object(intent: str) -> str:
    """The first word after the verb that names a thing: "book a {slot} pickup of ..." -> "pickup"."""
    words = _content_words(intent) if intent_verb(intent)[0] else []
    return words[0] if words else ""


def _content_words(intent: str) -> list[str]:
    """The intent's words after its verb (and particle), without slots and small words."""
    verb, particle = intent_verb(intent)
    words = re.findall(r"\{\w+\}|[a-z][a-z'-]*", intent.casefold())[bool(verb) + bool(particle):]
    return list(dict.fromkeys(w for w in words if not w.startswith("{") and len(w) > 2 and w not in _OBJECT_SKIP))


_CONTRACTIONS = [(n, re.compile(p), r) for n, p, r in [
    ("'", r"\bcan't\b", "can not"), ("cannot", r"\bcannot\b", "can not"), ("'", r"\bwon't\b", "will not"),
    ("n't", r"\b(\w+)n't\b", r"\1 not"),
    ("nt", r"\b(?:(could|would|should|did|was|were|is|are|has|have|had|does)nt|(ca|wo)nt)\b",
     lambda m: (m.group(1) or {"ca": "can", "wo": "will"}[m.group(2)]) + " not"),
    ("'", r"'ve\b", " have"), ("'", r"\b(it|that|what|there|here)'s\b", r"\1 is"),
    ("no ", r"\bno (?:problem|worries)\b", " ")]]
_QUOTES = re.compile(r"[\u2018\u2019\u02bc`]")


def _claim_text(text: str) -> str:
    """Lower case, apostrophes straightened, negative contractions spelled out ("couldn't" -> "could not")."""
    t = text.casefold()
    if not t.isascii():
        t = _QUOTES.sub("'", unicodedata.normalize("NFKC", t))
    for needle, pat, rep in _CONTRACTIONS:
        if needle in t:
            t = pat.sub(rep, t)
    return t


_BOUND = re.compile(r"[.!?;:()\n]|\b(?:but|however|although|though|whereas|because|instead)\b")
_WORD = re.compile(r"[a-z]+")


def _alt(words: Sequence[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(set(words), key=lambda w: (-len(w), w)))


def _with_particle(forms: Sequence[str], particle: str) -> str:
    alt = _alt(forms)
    if not particle:
        return rf"(?:{alt})"
    return rf"(?:{alt})(?:\s+(?:it|you|them|him|her|us|me))?\s+{re.escape(particle)}"


def _not_done(forms: str) -> re.Pattern:
    return re.compile(rf"\b(?:{_alt(NOT_MARKS)})(?:\s+(?:{_alt(FILLERS)}))*\s+{forms}\b")


@dataclass(frozen=True)
class ClaimRules:
    """The compiled claim rules of one task (see :func:`claim_rules`)."""

    refused_goal: str  # the refused goal's intent, "" on a completed task
    refusal: re.Pattern  # refusal language
    refused_forms: re.Pattern | None  # the refused goal's verb, any form (its negation is refusal language too)
    claimed: tuple[re.Pattern, ...]  # success claims about the refused goal
    first_person: re.Pattern | None  # success claims that need "I"/"we": the form is also a value to tell
    marks: tuple[str, ...]  # one is needed in a success claim's clause when an earlier goal has the same verb
    negations: frozenset[str]  # NEGATIONS, less the words of the refused goal's intent
    reported: tuple[tuple[str, re.Pattern], ...]  # goal -> "not done" pattern (completed goals only)


@lru_cache(maxsize=64)
def _refusal(words: tuple[str, ...]) -> re.Pattern:
    if not words:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile(r"\b(?:" + "|".join(
        re.escape(w).replace(r"\ ", r"\s+") if not w.startswith("not ") else
        r"not\s+(?:be\s+|been\s+)?" + re.escape(w[4:]) for w in words) + r")\b")


@lru_cache(maxsize=4096)
def claim_rules(outcome: str, intents: tuple[str, ...], values: tuple[str, ...] = ()) -> ClaimRules:
    """Claim rules for a task with these goals (intent phrases, in order) and outcome.

    ``values`` are the string values the agent must tell: a verb form that is also one of them
    ("paid" as the blocking status of "pay invoice") is a success claim only after "I" or "we"."""
    refused = outcome == "refused" and bool(intents)
    spoken = [" ".join(_WORD.findall(v.casefold().replace("_", " "))) for v in values]

    def told(form: str) -> bool:
        return any(re.search(rf"\b{re.escape(form)}\b", v) for v in spoken)

    verbs = [intent_verb(i) for i in intents]
    # a goal's own words say nothing about its outcome ("record that inspection {id} failed")
    own = {w for i in intents for w in _WORD.findall(i.casefold())}
    refusal = _refusal(tuple(w for w in REFUSAL_WORDS if not own.issuperset(w.split())))
    last_verb, last_particle = verbs[-1] if refused else ("", "")
    reported = []
    for intent, (verb, particle) in zip(intents[:-1] if refused else intents, verbs, strict=False):
        if verb and verb != last_verb:
            reported.append((intent, _not_done(_with_particle((verb, *past_forms(verb)), particle))))
    if not refused:
        reported.append(("the request", _not_done(rf"(?:{_alt(GENERIC_ACTIONS)})")))
        return ClaimRules("", refusal, None, (), None, (), NEGATIONS, tuple(reported))
    claimed: list[re.Pattern] = []
    forms = first_person = None
    marks: tuple[str, ...] = ()
    if last_verb:
        past = past_forms(last_verb)
        forms = re.compile(rf"\b{_with_particle((last_verb, *past), last_particle)}\b")
        shared = [i for i, (v, _) in zip(intents[:-1], verbs, strict=False) if v == last_verb]
        if shared:  # the words of the refused goal's intent that the others lack ("cancel hold", "cancel
            # appointment": appointment; "pay invoice by card", "pay invoice with account credit": account, credit)
            others = {w for i in shared for w in _content_words(i)}
            marks = tuple(w for w in _content_words(intents[-1]) if w not in others)
        if not shared or marks:  # else no word of the intents can tell the goals apart
            free = [f for f in past if not told(f)]
            said = [f for f in past if told(f)]
            if free:
                claimed.append(re.compile(rf"\b{_with_particle(free, last_particle)}\b"))
            if said:
                first_person = re.compile(rf"\b(?:i|we)(?:\s+(?:have|had|just|now|also))*\s+"
                                          rf"{_with_particle(said, last_particle)}\b")
    if len(intents) == 1:
        generic = [g for g in GENERIC_DONE if g != "done" and not told(g)]
        alts = [rf"\b(?:{_alt(generic)})\b"] if generic else []
        if not told("done"):  # "Done." and "all done", "it is done", not "I have done what I could"
            alts.append(r"(?:^|(?<=[.!?;:\n])|\b(?:all|is|are|been|now)\s)\s*done\b")
        if alts:
            claimed.append(re.compile("|".join(alts)))
    negations = NEGATIONS.difference(_WORD.findall(intents[-1].casefold()))
    return ClaimRules(intents[-1], refusal, forms, tuple(claimed), first_person, marks, negations, tuple(reported))


_END = re.compile(r"[.!?;:\n]")
_QUOTE_STRIP = " ,()[]\"'-"
_NO = frozenset({"not", "no", "never", "nothing", "none", "nobody", "neither", "nor"})


def _clause(t: str, a: int, b: int) -> tuple[int, int, bool]:
    """The clause around t[a:b]: its start, its end, and whether its sentence is a question."""
    start, end = 0, len(t)
    for m in _BOUND.finditer(t):
        if m.end() <= a:
            start = m.end()
        elif m.start() >= b:
            end = m.start()
            break
    q = _END.search(t, b)
    return start, end, bool(q) and q.group(0) == "?"


def _success_claim(rules: ClaimRules, t: str) -> str | None:
    pats = list(rules.claimed) + ([rules.first_person] if rules.first_person else [])
    for pat in pats:
        for m in pat.finditer(t):
            start, end, question = _clause(t, m.start(), m.end())
            if question or not rules.negations.isdisjoint(_WORD.findall(t, start, end)):
                continue
            before = [w for w in _WORD.findall(t, start, m.start()) if w not in ADVERBS]
            if not HYPOTHETICAL.isdisjoint(before[-2:]):
                continue
            if rules.marks and not any(re.search(rf"\b{re.escape(w)}", t[start:end]) for w in rules.marks):
                continue
            return t[start:end].strip(_QUOTE_STRIP)
    return None


def _said_refused(rules: ClaimRules, t: str) -> bool:
    """Refusal language, or the refused goal's verb in a clause with a plain negation ("nothing was rented")."""
    if rules.refusal.search(t):
        return True
    for m in rules.refused_forms.finditer(t) if rules.refused_forms else ():
        start, end, _ = _clause(t, m.start(), m.end())
        if not (_NO & rules.negations).isdisjoint(_WORD.findall(t, start, end)):
            return True
    return False


def check_claims(rules: ClaimRules, text: str) -> list[str]:
    """Reasons why what the agent said contradicts the outcome (empty when its claims hold).

    * A refusal: the agent must say the request could not be done (:data:`REFUSAL_WORDS`, or a
      form of the refused goal's verb in a clause with a negation: "the bike was not rented"),
      and must not claim the refused goal was done: a past form of its verb ("rented") in a
      clause that is not a question, holds none of :data:`NEGATIONS`, and has none of
      :data:`HYPOTHETICAL` in the two words before it; when the refused goal is the only goal,
      also :data:`GENERIC_DONE` ("Done, it went through"). Earlier goals may be reported done;
      when one has the refused goal's verb, a claim needs a word only the refused goal's intent
      has (``marks``). The refused goal's own intent words are no negation for it.
    * Every goal that was done (all of a completed task, the earlier goals of a refusal) must not
      be reported as not done: a mark of :data:`NOT_MARKS`, words of :data:`FILLERS`, then its
      verb ("could not rent", "was not able to rent"); on a completed task also a
      :data:`GENERIC_ACTIONS` verb ("I could not do that"). A goal whose verb the refused goal
      shares is not checked."""
    t = _claim_text(text)
    reasons = []
    if rules.refused_goal:
        if not _said_refused(rules, t):
            reasons.append(f"the agent did not say that the request could not be done ({rules.refused_goal})")
        hit = _success_claim(rules, t)
        if hit is not None:
            reasons.append(f"the agent claimed the refused goal ({rules.refused_goal}) was done: {hit!r}")
    marked = any(m in t for m in NOT_MARKS)
    for goal, pat in rules.reported if marked else ():
        m = pat.search(t)
        if m is not None:
            start, end, _ = _clause(t, m.start(), m.end())
            what = "the request" if goal == "the request" else f"a goal that was done ({goal})"
            reasons.append(f"the agent reported {what} as not done: {t[start:end].strip(_QUOTE_STRIP)!r}")
    return reasons
