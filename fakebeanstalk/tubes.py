"""Tube lifetime and the tube commands of the fake server's state.

Tubes are reference-counted (uses, watches, jobs) and vanish the moment the count reaches 0,
except ``default``; lists use swap-remove, as beanstalkd's ms.c does, which is what makes
``list-tubes`` and ``list-tubes-watched`` come out in the real server's order.
"""

from __future__ import annotations

from fakebeanstalk.clock import NS_PER_SECOND, Clock
from fakebeanstalk.model import Client, Tube


class TubeRegistry:
    """The tubes of one server: find or make them, drop references, use/watch/ignore/pause."""

    clock: Clock
    tubes: list[Tube]
    _tube_index: dict[str, Tube]

    def _find_or_make(self, name: str) -> Tube:
        tube = self._tube_index.get(name)
        if tube is None:
            tube = Tube(name)
            self.tubes.append(tube)
            self._tube_index[name] = tube
        return tube

    def find_tube(self, name: str) -> Tube | None:
        """The tube of that name, if it exists."""
        return self._tube_index.get(name)

    def _dref(self, tube: Tube) -> None:
        tube.refs -= 1
        if tube.refs < 1:
            tubes = self.tubes
            i = tubes.index(tube)
            tubes[i] = tubes[-1]
            tubes.pop()
            del self._tube_index[tube.name]

    def make_tube(self, name: str) -> Tube:
        """The tube of that name, created if missing (the caller takes a reference)."""
        return self._find_or_make(name)

    def use(self, client: Client, name: str) -> None:
        """use: the new tube is made before the old one may vanish."""
        tube = self._find_or_make(name)
        tube.refs += 1
        old = client.use
        old.using -= 1
        self._dref(old)
        client.use = tube
        tube.using += 1

    def watch(self, client: Client, name: str) -> int:
        """watch: returns the number of watched tubes."""
        tube = self._find_or_make(name)
        if tube not in client.watch:
            client.watch.append(tube)
            tube.watching += 1
            tube.refs += 1
        return len(client.watch)

    def ignore(self, client: Client, name: str) -> int | None:
        """ignore: the number of watched tubes left, or None for NOT_IGNORED."""
        watch = client.watch
        for i, tube in enumerate(watch):
            if tube.name == name:
                if len(watch) < 2:
                    return None
                watch[i] = watch[-1]
                watch.pop()
                tube.watching -= 1
                self._dref(tube)
                break
        return len(watch)

    def pause_tube(self, name: str, delay: int) -> bool:
        """pause-tube: 0 means a 1 ns pause (an unpause)."""
        tube = self._tube_index.get(name)
        if tube is None:
            return False
        delay_ns = delay * NS_PER_SECOND or 1
        tube.unpause_at = self.clock.now_ns() + delay_ns
        tube.pause = delay_ns
        tube.pause_count += 1
        return True
