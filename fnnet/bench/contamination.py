"""Was anything else using the cores while a benchmark row was measured?

``watch()`` reads the 1-minute load average, ``/proc/stat`` and every ``/proc/<pid>/stat`` before a row and
again after it, and compares them.  The bench process and its descendants (the workers) are "own"; their
CPU time is known exactly from ``os.times()`` (workers are waited for, so their time lands in the
children's fields).  A row is contaminated when

- another process used more than ``PROCESS_SHARE`` of a core over the window (by the change of its
  ``utime + stime``; a process that appeared during the window counts in full), or
- the machine's busy time, less the bench's own, exceeds ``TOTAL_SHARE`` of a core: this also catches
  processes that started and ended inside the window, which no ``/proc/<pid>`` read sees, or
- the hypervisor took more than ``TOTAL_SHARE`` of a core from this virtual machine (steal time).

The load average is recorded as evidence only: the bench's own threads raise it.
"""

from __future__ import annotations

import os
import time

import attrs

PROCESS_SHARE = 0.05  # of one core
TOTAL_SHARE = 0.10
TOP = 5  # busiest other processes kept as evidence
_TICK = os.sysconf("SC_CLK_TCK")


@attrs.frozen
class Snapshot:
    """The state of the machine at one instant (CPU times in seconds)."""

    wall: float
    load: float
    busy: float  # all CPUs, user + nice + system + irq + softirq
    steal: float
    own: float  # this process and its waited-for children
    procs: dict  # pid -> (name, ppid, cpu seconds)


def parse_stat(text):
    """``(name, ppid, cpu seconds)`` from the text of ``/proc/<pid>/stat`` (the name may hold spaces and
    parentheses; the fields after its last ')' are 3 = state, 4 = ppid, ..., 14 = utime, 15 = stime)."""
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _read_proc(pid):
    """``parse_stat`` of one process, or None if it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return parse_stat(fh.read())
    except (OSError, ValueError, IndexError):
        return None


def _command(pid, words=3, limit=60):
    """The program's base name and its next ``words - 1`` arguments ('python -m pytest'; '' if it is gone):
    enough to tell processes apart, short of recording whole command lines."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return ""
    argv[0] = os.path.basename(argv[0])
    return " ".join(" ".join(argv[:words]).split())[:limit]


def _read_system():
    with open("/proc/stat") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / _TICK, steal / _TICK


def snapshot():
    """Read the load average, the machine's CPU times and every process's CPU time (a few ms)."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read_proc(entry)
            if info is not None:
                procs[int(entry)] = info
    busy, steal = _read_system()
    t = os.times()
    return Snapshot(time.perf_counter(), os.getloadavg()[0], busy, steal,
                    t.user + t.system + t.children_user + t.children_system, procs)


def _own_pids(procs, root):
    """``root`` and all its descendants among ``procs``."""
    own, grew = {root}, True
    while grew:
        new = {pid for pid, (_, ppid, _) in procs.items() if ppid in own} - own
        own |= new
        grew = bool(new)
    return own


def compare(before, after, root=None):
    """The evidence of what else ran between two snapshots (shares are fractions of one core)."""
    root = os.getpid() if root is None else root
    wall = max(after.wall - before.wall, 1e-9)
    own = _own_pids(after.procs, root) | _own_pids(before.procs, root)
    others = []
    for pid, (name, _, cpu) in after.procs.items():
        if pid in own:
            continue
        used = cpu - before.procs[pid][2] if pid in before.procs else cpu
        if used / wall > PROCESS_SHARE:
            others.append({"pid": pid, "name": name, "command": _command(pid),
                           "cpu_percent": round(100 * used / wall, 1)})
    others.sort(key=lambda p: -p["cpu_percent"])
    other_total = max(0.0, (after.busy - before.busy) - (after.own - before.own)) / wall
    steal = (after.steal - before.steal) / wall
    return evidence(before.load, after.load, others, other_total, steal, wall)


def evidence(load_before, load_after, others, other_total, steal, seconds):
    """One row's record: the numbers, the busiest other processes, and the verdict."""
    return {"contaminated": bool(others) or other_total > TOTAL_SHARE or steal > TOTAL_SHARE,
            "load_before": round(load_before, 2), "load_after": round(load_after, 2),
            "other_cpu_percent": round(100 * other_total, 1), "steal_percent": round(100 * steal, 1),
            "busy_processes": others[:TOP], "seconds": round(seconds, 2)}


class Watch:
    """``with Watch() as w: measure()``; then ``w.evidence``."""

    def __enter__(self):
        self._before = snapshot()
        self.evidence = None
        return self

    def __exit__(self, *exc):
        self.evidence = compare(self._before, snapshot())
        return False


def _short(process):
    """A busy process's program and first arguments (its name if they are unknown)."""
    return process.get("command") or process["name"]


def describe(record, top=TOP):
    """A short human line: 'load 2.1 -> 3.4, other processes 37% of a core (python -m pytest 30%, ...)'."""
    names = ", ".join(f"{_short(p)} {p['cpu_percent']:.0f}%" for p in record["busy_processes"][:top])
    text = (f"load {record['load_before']:.1f} -> {record['load_after']:.1f}, "
            f"other processes {record['other_cpu_percent']:.0f}% of a core")
    if record["steal_percent"] > 0.5:
        text += f", steal {record['steal_percent']:.0f}%"
    return text + (f" ({names})" if names else "")
