"""The terminal of ``rtq listen``: a thin layer of keys and text over a test driver
(:class:`~rtq.listen.abx.AbxTest` or :class:`~rtq.listen.mushra.MushraTest`).

The screen shows where the test is (trial or item, loop points), what plays, and, for
MUSHRA, each slot's rating; never a score (the drivers keep it until the end).  In a
practice test the status line tells each answer.  Keys: :data:`ABX_KEYS` and
:data:`MUSHRA_KEYS` (``h`` lists them); :mod:`rtq.ui.keys` reads them.
"""
from __future__ import annotations

import contextlib
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from .keys import KeyReader
from .quit import Quit, SigtermAsQuit

KEY_POLL_S = 0.02
REDRAW_S = 0.25          # without keys, the screen is redrawn this often (status expiry)
STATUS_S = 8.0
RATING_STEPS = {"up": 1, "down": -1, "right": 10, "left": -10}
FIRST_RATING = 50        # where up/down start on a slot not rated yet

_COMMON_KEYS = (
    (("space",), "pause", "pause / play"),
    (("[",), "loop_start", "loop start at the playhead"),
    (("]",), "loop_end", "loop end at the playhead"),
    (("\\",), "loop_reset", "loop points back to the test file's"),
    (("h", "?"), "help", "show/hide this help (esc hides it)"),
    (("q",), "quit", "quit: the log keeps every answer (--resume continues)"),
)
ABX_KEYS = (
    (("a",), "play_A", "play A"),
    (("b",), "play_B", "play B"),
    (("x",), "play_X", "play X"),
    (("y",), "play_Y", "play Y (ABXY: the one X is not)"),
    (("s",), "silence", "silence"),
    (("1",), "answer_A", "answer: X is A"),
    (("2",), "answer_B", "answer: X is B"),
) + _COMMON_KEYS
MUSHRA_KEYS = (
    (("r",), "reference", "play the reference"),
    (("1", "2", "3", "4", "5", "6", "7", "8", "9", "0"), "slot", "play (and select) condition 1..9, 10"),
    (("tab", "shift-tab"), "cycle", "play the next / previous condition (any of them)"),
    (("up", "down"), "rate", "rating of the selected condition +1 / -1 (first press: 50)"),
    (("right", "left"), "rate", "rating +10 / -10"),
    (("=",), "type", "type a rating: = 7 5 enter"),
    (("s",), "silence", "silence"),
    (("enter",), "next", "next item (once every condition has a rating)"),
) + _COMMON_KEYS
KEY_NAMES = {"up": "↑", "down": "↓", "left": "←", "right": "→", "space": "space", "enter": "enter"}


def _actions(keymap) -> dict[str, str]:
    return {key: action for keys, action, _ in keymap for key in keys}


class ListenControls:
    """What the listener does, as calls of a test driver, and what the face shows of it
    (what plays, paused, the selected MUSHRA slot, a status line): the terminal screen
    and the web page (:mod:`rtq.web.listen`) act through this, so both run one logic.
    :meth:`act` takes the actions of :data:`ABX_KEYS` / :data:`MUSHRA_KEYS`; a refusal
    (ValueError, RuntimeError) is raised for the face to show."""

    def __init__(self, driver):
        self.driver = driver
        self.mushra = hasattr(driver, "rate")
        self.keymap = MUSHRA_KEYS if self.mushra else ABX_KEYS
        self.actions = _actions(self.keymap)
        self.status: tuple[str, str, float] | None = None
        self.playing: str | None = None       # what the listener chose, as shown
        self.paused = False
        self.selected = 0                      # MUSHRA: the slot the rating keys change

    def say(self, message: str, style: str = "green") -> None:
        self.status = (message, style, time.monotonic())

    def act(self, action: str, key: str | None = None) -> None:
        """Do ``action`` (``key``: the key that asked, for the ones it qualifies: which
        slot, which rating step, which way to cycle)."""
        driver = self.driver
        if action == "pause":
            if self.paused:
                driver.resume_playing()
            else:
                driver.pause()
            self.paused = not self.paused
        elif action in ("loop_start", "loop_end", "loop_reset"):
            self._loop(action)
        elif action == "silence":
            driver.stop()
            self.playing = None
        elif action.startswith("play_"):
            label = action[5:]
            if label not in driver.labels:
                raise ValueError(f"{label} is not played in an {driver.test.type.upper()} test")
            driver.play(label)
            self.playing = label
        elif action.startswith("answer_"):
            self._answer(action[7:])
        elif action == "reference":
            driver.play_reference()
            self.playing = "reference"
        elif action == "slot":
            self.play_slot(9 if key == "0" else int(key) - 1)
        elif action == "cycle":
            self.play_slot((self.selected + (1 if key == "tab" else -1)) % driver.slots)
        elif action == "rate":
            current = driver.ratings[self.selected]
            rating = FIRST_RATING if current is None else current + RATING_STEPS[key]
            driver.rate(self.selected, min(100, max(0, rating)))
        elif action == "next":
            self._next()
        else:
            raise ValueError(f"no action {action!r}")

    def play_slot(self, slot: int) -> None:
        """MUSHRA: play (and select) ``slot`` (0-based)."""
        self.driver.play(slot)
        self.selected = slot
        self.playing = str(slot + 1)

    def rate(self, slot: int, rating: int) -> None:
        """MUSHRA: rate ``slot`` (and select it)."""
        self.driver.rate(slot, rating)
        self.selected = slot

    def set_loop(self, start: float, end: float) -> None:
        """Move the loop points (seconds)."""
        self.driver.loop = (start, end)
        start, end = self.driver.loop
        self.say(f"loop {start:.2f} to {end:.2f} s")

    def _answer(self, x_is: str) -> None:
        driver = self.driver
        truth = driver.answer(x_is)
        self.playing = None
        if truth is not None:
            verdict = ("right", "bold green") if truth == x_is else ("wrong", "bold red")
            self.say(f"practice: X was {truth}: {verdict[0]}", verdict[1])
        elif not driver.done:
            self.say(f"answered trial {driver.trial}: X is {x_is}", "green")

    def _next(self) -> None:
        driver = self.driver
        order = driver.next()
        self.playing, self.selected = None, 0
        if order is not None:
            self.say("practice: " + ", ".join(f"{slot + 1} = {name}" for slot, name in enumerate(order)), "cyan")

    def _loop(self, action: str) -> None:
        driver = self.driver
        start, end = driver.loop
        if action == "loop_reset":
            item = driver.test.items[driver.item]
            self.set_loop(*(item.loop or (0.0, end)))
        else:
            position = driver.comparison.position
            self.set_loop(*((position, end) if action == "loop_start" else (start, position)))


class ListenScreen(ListenControls):
    """The screen of one test driver; :meth:`handle_key` turns keys into its actions."""

    def __init__(self, driver, console: Console | None = None):
        super().__init__(driver)
        self.console = console or Console()
        self.show_help = False
        self.typed: str | None = None          # MUSHRA: a rating being typed after '='

    # -- keys ------------------------------------------------------------------------------

    def handle_key(self, key: str) -> None:
        """Act on one key; raises :class:`Quit` for ``q``.  A refusal becomes the status."""
        if key == " ":
            key = "space"
        if self.typed is not None and self._typing(key):
            return
        action = self.actions.get(key)
        if key == "esc" and self.show_help:
            action = "help"
        if action is None:
            return
        if action == "quit":
            raise Quit()
        if action == "help":
            self.show_help = not self.show_help
            return
        if action == "type":
            self.typed = ""
            return
        try:
            self.act(action, key)
        except (ValueError, RuntimeError) as err:
            self.say(str(err), "bold red")

    def _typing(self, key: str) -> bool:
        """Digits after '=' (enter sets, esc or backspace edits); True if the key was taken."""
        if key.isdigit() and len(self.typed) < 3:
            self.typed += key
        elif key == "backspace":
            self.typed = self.typed[:-1]
        elif key == "esc":
            self.typed = None
        elif key == "enter":
            typed, self.typed = self.typed, None
            if typed:
                try:
                    self.driver.rate(self.selected, int(typed))
                except ValueError as err:
                    self.say(str(err), "bold red")
        else:
            return False
        return True

    # -- drawing ---------------------------------------------------------------------------

    def render(self) -> Text:
        driver, test = self.driver, self.driver.test
        text = Text()
        kind = test.type.upper() + (" practice" if driver.practice else "")
        text.append(f"rtq listen · {test.name} · {kind}", style="bold")
        text.append(f" · listener {driver.listener or '(unnamed)'}\n", style="dim")
        item = test.items[driver.item]
        where = "sound card input" if item.input == "live" else item.input
        start, end = driver.loop
        if self.mushra:
            text.append(f"item {driver.item + 1} of {len(test.items)}", style="bold")
        else:
            text.append(f"trial {driver.trial + 1} of {test.trials}", style="bold")
            if test.sequential and not driver.practice:
                text.append(" (sequential: the test ends early once the answers show a difference)", style="dim")
            text.append(f"   item {driver.item + 1} of {len(test.items)}")
        text.append(f": {where}, loop {start:.2f} to {end:.2f} s\n\n")
        if self.show_help:
            self._help(text)
        elif self.mushra:
            self._slots(text)
        else:
            self._abx(text)
        text.append("\n")
        if self.status is not None and time.monotonic() - self.status[2] < STATUS_S:
            text.append(self.status[0], style=self.status[1])
        text.append("\n")
        hint = ("r ref  1-9 0 play  ↑↓←→ = rate  enter next" if self.mushra
                else "a b x" + (" y" if "Y" in self.driver.labels else "") + " play  1 X is A  2 X is B")
        text.append(hint + "  space pause  [ ] loop  h help  q quit", style="dim")
        return text

    def _playing(self) -> str:
        if self.paused:
            return "paused"
        return "silence" if self.playing is None else f"playing {self.playing}"

    def _abx(self, text: Text) -> None:
        for label in self.driver.labels:
            style = "bold reverse" if label == self.playing else "bold"
            text.append(f"  [ {label} ]  ", style=style)
        text.append(f"    {self._playing()}\n\n")
        text.append("  which one is X?   1: X is A    2: X is B\n")

    def _slots(self, text: Text) -> None:
        driver = self.driver
        text.append(f"  {'ref':>4}  reference", style="bold reverse" if self.playing == "reference" else "bold")
        text.append(f"    {self._playing()}\n")
        for slot, rating in enumerate(driver.ratings):
            marker = "▶" if slot == self.selected else " "
            name = "0" if slot == 9 else str(slot + 1) if slot < 9 else f"({slot + 1})"
            style = "bold reverse" if self.playing == str(slot + 1) else ""
            text.append(f"{marker} {name:>4}  ", style=style)
            filled = 0 if rating is None else round(rating / 5)
            text.append("█" * filled + "·" * (20 - filled), style="cyan")
            shown = "--" if rating is None else f"{rating:3d}"
            if slot == self.selected and self.typed is not None:
                shown = f"= {self.typed}_"
            text.append(f"  {shown}\n")
        missing = sum(rating is None for rating in driver.ratings)
        text.append("\n  " + ("every condition rated: enter goes on" if not missing
                              else f"{missing} condition{'s' * (missing != 1)} to rate"), style="dim")
        text.append("\n")

    def _help(self, text: Text) -> None:
        text.append("keys\n", style="bold")
        for keys, _, description in self.keymap:
            names = " ".join(KEY_NAMES.get(key, key) for key in keys)
            text.append(f"  {names:<22}", style="bold cyan")
            text.append(description + "\n")
        text.append("  (h, ? or esc closes this help)\n", style="dim")


def run_listen_screen(driver, *, console: Console | None = None, keys=None) -> ListenScreen:
    """Run ``driver``'s test on the terminal until it ends, ``q``, Ctrl-C or SIGTERM; the
    terminal is restored in every case.  Returns the screen."""
    console = console or Console()
    reader = KeyReader() if keys is None else keys
    screen = ListenScreen(driver, console)
    with contextlib.ExitStack() as stack:
        stack.enter_context(SigtermAsQuit())
        if hasattr(reader, "__enter__"):
            stack.enter_context(reader)
        live = stack.enter_context(Live(console=console, screen=True, auto_refresh=False))
        try:
            drawn = -REDRAW_S
            while not driver.done:
                keys_read = reader.read()
                for key in keys_read:
                    screen.handle_key(key)
                    if driver.done:
                        break
                now = time.monotonic()
                if not driver.done and (keys_read or now - drawn >= REDRAW_S):
                    live.update(screen.render(), refresh=True)
                    drawn = now
                time.sleep(KEY_POLL_S)
        except (Quit, KeyboardInterrupt):
            pass
    return screen
