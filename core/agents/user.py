"""The user an agent talks to: a protocol, and a scripted (rule-based, offline) user simulator.

A conversation starts with :meth:`User.start` (the task's first message) and goes on with
:meth:`User.reply` to each message the agent says. A reply holding :data:`STOP` ends it. An LLM
user will implement the same protocol; :class:`ScriptedUser` answers by rules from the task's
:class:`~core.data.taskmodel.Scenario` and ground truth, deterministically (docs/tasks.md, "The user"):

1. A question naming facts the user knows (``Scenario.known``): it tells them, every fact whose
   noun the question names ("My email is ann@x.com. The serial is BK123-AB.").
2. A question naming something in ``Scenario.unknown``: "I don't know the rental id; can you look it up?"
3. A request to confirm ("shall I", "do you want me to", "proceed?"): "Yes, please go ahead."
4. The outcome reported (every required value said on a completed task; refusal language, by the
   claim rules of core/evaluation/claims.py, on a refused one): "Thank you, that's all. ###STOP###".
5. "How can I help?": the reason for calling (or the first message again).
6. Any other question: "Sorry, I don't know that."
7. A statement that does not report the outcome: it asks for what is missing, and ends the
   conversation ("OK, thanks anyway. ###STOP###") after two such turns without progress.

It never says a value that is not in ``Scenario.known`` or the first message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from core.data.taskmodel import Task
from core.evaluation.claims import check_claims, claim_rules
from core.evaluation.reward import value_mentioned

STOP = "###STOP###"
THANKS = f"Thank you, that's all. {STOP}"
GIVE_UP = f"OK, thanks anyway. {STOP}"
GO_AHEAD = "Yes, please go ahead."
DONT_KNOW = "Sorry, I don't know that."
USERS = ("scripted", "none")

_NOT_SAID = "the agent did not say that the request could not be done"  # check_claims' reason (docs/tasks.md)


class User(Protocol):
    """The user side of a conversation. ``start`` gives the first message; ``reply`` answers each
    message of the agent. A reply containing :data:`STOP` ends the conversation."""

    def start(self, task: Task) -> str: ...

    def reply(self, agent_text: str) -> str: ...


def goal_intents(task: Task, intents: Mapping[str, str] | None = None) -> list[str]:
    """The intent phrases of the task's goal steps, in order (a tool's name in words when it has none)."""
    intents = intents or {}
    return [intents.get(s.tool) or s.tool.replace("_", " ") for s in task.chain if s.role == "goal"]


# ---------------------------------------------------------------------- words

def _norm(text: str) -> str:
    """Lower case, every run of characters other than letters and digits as one space."""
    return " " + re.sub(r"[\W_]+", " ", text.casefold()).strip() + " "


def fact_noun(key: str) -> str:
    """The noun of a ``known`` key: without a trailing ``_N``, underscores as spaces ("email_2" -> "email")."""
    return re.sub(r"_\d+$", "", key).replace("_", " ").strip()


_VARIANTS = {"email": ("e mail", "email address", "e mail address", "mail address"),
             "phone": ("phone number", "telephone", "telephone number")}
# a key's last word alone is too vague when it is one of these ("due on": on; "unit number": number)
_WEAK_SKIP = frozenset({"id", "on", "at", "by", "of", "to", "in", "no", "kg", "ft", "ml", "number", "name"})
# the agent asks for something; facts and unknown nouns are matched in these sentences only
_ASK = re.compile(r" (?:could|can|would|will) you | (?:could|can|may) i (?:have|get|ask) | i (?:ll |will )?need "
                  r"(?:your|the|to know) | please (?:provide|give|share|send|tell|let me know|confirm|enter) "
                  r"| tell me (?:your|the) | do you (?:have|know|remember) ")
_ASK_START = re.compile(r"^ (?:what|which|whats|where|when) ")
# the agent asks for the go-ahead before a write
_CONFIRM_ANY = re.compile(r" (?:shall|should) (?:i|we) | do you want me to | would you like me to "
                          r"| (?:can|may) i go ahead | is (?:that|this) (?:correct|right) ")
_CONFIRM_Q = re.compile(r" (?:confirm|proceed|go ahead) ")
_HELP = re.compile(r" (?:how|what) (?:can|may|could) i (?:help|assist|do for you) | what do you need "
                   r"| what would you like | what brings you | how can i be of help ")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def _noun_pattern(words: Sequence[str]) -> str:
    """Whole words, the last one with an optional plural ending."""
    *head, last = words
    return "".join(re.escape(w) + " " for w in head) + re.escape(last) + "(?:s|es)?"


def _spans(pattern: re.Pattern, text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


class _Fact:
    """One known fact and the word patterns that name it."""

    def __init__(self, key: str, value: Any):
        self.key, self.value = key, value
        self.noun = fact_noun(key)
        words = self.noun.split() or [key]
        variants = [words] + [v.split() for w, vs in _VARIANTS.items() if words[-1] == w
                              for v in (" ".join(words[:-1] + [x]) for x in vs)]
        self.strong = re.compile(" (?:" + "|".join(_noun_pattern(v) for v in variants) + ") ")
        last = words[-1]
        self.weak = (re.compile(" " + _noun_pattern([last]) + " ")
                     if len(words) > 1 and len(last) > 2 and last not in _WEAK_SKIP else None)


def _say(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _the(noun: str) -> str:
    return ("your " if noun.split()[-1] in ("email", "phone") else "the ") + noun


class ScriptedUser:
    """A deterministic user from the task's scenario (see the module's docstring for the rules).

    ``intents`` maps tool names to their ``intent`` phrases (``DomainRuntime.intents``), which the
    claim rules need to tell a refusal; without them a goal's tool name in words stands in."""

    def __init__(self, intents: Mapping[str, str] | None = None):
        self.intents = dict(intents or {})
        self.task: Task | None = None
        self.done = False

    def start(self, task: Task) -> str:
        sc = task.scenario
        self.task = task
        self.done = False
        self.said: list[str] = []  # everything the agent said, in order
        self.stalls = 0
        self.progress = 0
        self.first = sc.instruction
        self.facts = [_Fact(k, v) for k, v in sc.known.items()]
        self.unknown = []
        for u in sc.unknown:
            noun = re.sub(r"^(?:the|a|an|my|your) ", "", " ".join(_norm(u).split()))
            if noun:
                self.unknown.append((noun, re.compile(" " + _noun_pattern(noun.split()) + " ")))
        self.required = list(task.ground_truth.communicate)
        self.refused = task.ground_truth.outcome == "refused"
        if self.refused:
            values = tuple(str(r.value) for r in self.required if isinstance(r.value, str))
            self.rules = claim_rules("refused", tuple(goal_intents(task, self.intents)), values)
        return self.first

    # ------------------------------------------------------------------ reading the agent

    def _questions(self, text: str) -> list[str]:
        """The agent's sentences that ask for something, normalized."""
        out = []
        for s in _SENTENCE.split(text):
            n = _norm(s)
            if s.strip().endswith("?") or _ASK.search(n) or _ASK_START.search(n):
                out.append(n)
        return out

    def _asked_facts(self, questions: list[str]) -> list[_Fact]:
        """Known facts whose noun a question names: by the whole noun, else by its last word (where
        no whole noun was named)."""
        hit: list[_Fact] = []
        for q in questions:
            spans = {f.key: _spans(f.strong, q) for f in self.facts}
            strong = [f for f in self.facts if spans[f.key]]
            taken = [s for f in strong for s in spans[f.key]]
            weak = [f for f in self.facts if f not in strong and f.weak is not None
                    and any(not any(a < e and s < b for a, b in taken) for s, e in _spans(f.weak, q))]
            hit += [f for f in strong + weak if f not in hit]
        return [f for f in self.facts if f in hit]  # in the scenario's order

    def _asked_unknown(self, questions: list[str]) -> list[str]:
        return [noun for noun, pat in self.unknown if any(pat.search(q) for q in questions)]

    def _mentioned(self, text: str) -> int:
        return sum(value_mentioned(r.value, text) for r in self.required)

    def reported(self, text: str) -> bool:
        """Does ``text`` (all the agent said) report the outcome? Completed: every required value
        is mentioned; refused: the claim rules find refusal language."""
        if self.refused:
            return not any(r.startswith(_NOT_SAID) for r in check_claims(self.rules, text))
        return self._mentioned(text) == len(self.required)

    # ------------------------------------------------------------------ answering

    def _tell(self, facts: list[_Fact]) -> str:
        by_noun: dict[str, list[Any]] = {}
        for f in facts:
            by_noun.setdefault(f.noun, []).append(f.value)
        out = []
        for noun, values in by_noun.items():
            head = "My" if noun.split()[-1] in ("email", "phone") else "The"
            text = f"{head} {noun} is {_say(values[0])}"
            text += "".join(f"; the other {noun} is {_say(v)}" for v in values[1:])
            out.append(text + ".")
        return " ".join(out)

    def _reason(self) -> str:
        """Why the user calls, unless that would tell a fact the first message does not."""
        reason = self.task.scenario.reason.strip() if self.task else ""
        if reason and all(value_mentioned(f.value, self.first) or not value_mentioned(f.value, reason)
                          for f in self.facts):
            return reason
        return self.first

    def _ask_missing(self, text: str) -> str:
        if self.refused:
            return "Could you tell me whether it was done, and if not, what is blocking it?"
        missing = [r for r in self.required if not value_mentioned(r.value, text)]
        nouns = list(dict.fromkeys(r.label.split(".")[-1].replace("_", " ") for r in missing))
        asks = [a for a in (" ".join(_norm(x).split()) for x in self.task.scenario.asks) if a in nouns]
        nouns = asks or nouns
        return f"Could you tell me {_and([_the(n) for n in nouns])}?" if nouns else "Could you tell me how it went?"

    def reply(self, agent_text: str) -> str:
        if self.task is None:
            raise ValueError("reply() before start(task)")
        if self.done:
            return STOP
        text = "" if agent_text is None else str(agent_text)
        self.said.append(text)
        everything = "\n".join(self.said)
        questions = self._questions(text)
        parts = []
        facts = self._asked_facts(questions)
        if facts:
            parts.append(self._tell(facts))
        unknown = self._asked_unknown(questions)
        if unknown:
            it = "it" if len(unknown) == 1 else "them"
            parts.append(f"I don't know {' or '.join('the ' + u for u in unknown)}; can you look {it} up?")
        n = _norm(text)
        if _CONFIRM_ANY.search(n) or any(_CONFIRM_Q.search(q) for q in questions):
            parts.append(GO_AHEAD)
        if parts:
            return " ".join(parts)
        if self.reported(everything):
            self.done = True
            return THANKS
        if any(_HELP.search(q) for q in questions):
            return self._reason()
        if questions:
            return DONT_KNOW
        # a statement that does not report the outcome
        now = self._mentioned(everything)
        if now > self.progress:
            self.progress, self.stalls = now, 0
        else:
            self.stalls += 1
        if self.stalls >= 2:
            self.done = True
            return GIVE_UP
        return self._ask_missing(everything)


def make_user(name: str, intents: Mapping[str, str] | None = None) -> ScriptedUser | None:
    """``"scripted"``: a :class:`ScriptedUser`; ``"none"``: no user (a message to the user ends the episode)."""
    if name == "scripted":
        return ScriptedUser(intents)
    if name == "none":
        return None
    raise ValueError(f"unknown user {name!r}: use {', '.join(USERS)}")
