"""Ctrl-C during training: finish the step in flight, then stop (so a save is whole).

A step changes the weights, the AdamW state, the schedule, the RNG and the data position;
a KeyboardInterrupt in the middle of ``optimizer.step()`` would leave some parameters
updated and others not. :class:`StepGuard` holds a SIGINT that lands inside a step until
the step ends and raises it there; outside a step (evaluating, saving, a callback) it
raises at once, as Python's default handler does. A second Ctrl-C inside the same step
stops at once and marks the state as torn (``hard_stop``), so nothing is saved.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["StepGuard"]


class StepGuard:
    """``with guard.installed(): ... with guard.step(): one_step()``."""

    def __init__(self) -> None:
        self.in_step = self.pending = self.hard_stop = False

    def _handler(self, signum, frame) -> None:
        if not self.in_step:
            raise KeyboardInterrupt
        if self.pending:  # the second Ctrl-C in one step: stop now, torn
            self.hard_stop = True
            raise KeyboardInterrupt
        self.pending = True

    @contextlib.contextmanager
    def installed(self):
        """Route SIGINT through the guard. Only in the main thread, and only over Python's
        default handler (a notebook's or an application's own handler is left alone)."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return
        signal.signal(signal.SIGINT, self._handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    @contextlib.contextmanager
    def step(self):
        """A section a Ctrl-C must not cut: a held one is raised when it ends."""
        self.in_step = True
        try:
            yield
        finally:
            self.in_step = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
