"""Control messages from a page, checked as presets are.

A message is a JSON object ``{"action": NAME, ...arguments, "id": N}`` (``id``, optional,
comes back in the reply).  Each page declares its actions as :class:`rtq.schema.Fields`
of their arguments (the rules presets and stage constructors use: types, ranges, choices,
unknown keys with the closest valid one); :func:`parse` refuses a message that breaks one
with a :class:`Refused` naming the action and the argument, before anything acts on it:
a refused message changes nothing.
"""
from __future__ import annotations

import json

from rtq.schema import NO_VALUE, Checker, Choice, Fields, Integer, shown

MAX_MESSAGE = 4096          # characters; the page's messages are under 200
MAX_ID = 2 ** 53            # what a JavaScript number holds exactly
ID = Integer(0, MAX_ID).optional(None)


class Refused(ValueError):
    """A message refused, with the reason (one line, for the page to show)."""


class _MessageChecker(Checker):
    def __init__(self, action: str):
        super().__init__()
        self.action = action

    def first(self) -> str | None:
        if not self.problems:
            return None
        problem = self.problems[0]
        name = str(problem.path[-1]) if problem.path else "the message"
        value = None if problem.value is NO_VALUE else shown(problem.value)
        return f"{self.action}: " + problem.message(name, "in the message", value)


def _not_a_number(word: str):
    raise ValueError(f"{word} is not a number JSON allows")


def parse(text: str, actions: dict[str, Fields]) -> dict:
    """The message ``text`` checked against ``actions`` (action name -> its arguments'
    rules): a dict with ``action``, ``id`` and the normalised arguments; else
    :class:`Refused` with the first problem."""
    if not isinstance(text, str):
        raise Refused("a control message is JSON text, not binary")
    if len(text) > MAX_MESSAGE:
        raise Refused(f"a control message is at most {MAX_MESSAGE} characters, got {len(text)}")
    try:
        message = json.loads(text, parse_constant=_not_a_number)
    except ValueError as err:
        raise Refused(f"a control message is a JSON object; this is not JSON ({err})") from None
    if not isinstance(message, dict):
        raise Refused(f"a control message is a JSON object, got {shown(message)}")
    if not actions:
        raise Refused("this page takes no control messages")
    if "action" not in message:
        raise Refused("message: the message is missing required key 'action'")
    checker = _MessageChecker("message")
    action = Choice(tuple(actions)).check(message["action"], ("action",), checker)
    if checker.problems:
        raise Refused(checker.first())
    rules = Fields({"action": Choice((action,)), "id": ID, **actions[action].fields})
    checker = _MessageChecker(action)
    checked = rules.check(message, (), checker)
    if checker.problems:
        raise Refused(checker.first())
    return checked
