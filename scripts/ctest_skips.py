#!/usr/bin/env python3
"""Counts the skipped tests of one ctest run and why, from ctest's JUnit file (--output-junit).

Usage: scripts/ctest_skips.py JUNIT.xml [--list]
Prints one line: "N skipped (a: reason, b: reason, ...)" ("0 skipped" if none); --list adds one
line per skipped test after it ("  skipped: <test>: <reason>").

What counts as a skip:
  - a ctest entry that did not run (status "notrun": a GoogleTest case registered by
    gtest_discover_tests that called GTEST_SKIP, which ctest marks Skipped by its
    SKIP_REGULAR_EXPRESSION "[  SKIPPED ]"; or a disabled entry). Its reason is GTEST_SKIP's
    message, read from the test's output;
  - a skip inside an entry that ran: a GoogleTest binary registered as one entry
    ("[  SKIPPED ] Suite.Name (N ms)" lines) or a pytest file (pytest -rs: "SKIPPED [n] file:line:
    reason").
Reasons are grouped by the CPU-feature answer they quote (ne::cpu::why_not: "CPU lacks AVX512_VNNI",
"capped by NE_MAX_ISA=avx2", ...) where they hold one, so that 40 kernels skipped for one missing ISA
make one group; other messages are grouped as they are (less a trailing "(...)").
"""
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter

GTEST_SKIP_RE = re.compile(r"^.*:\d+: Skipped\n(.*?)\n\[  SKIPPED \] (\S+) \(\d+ ms\)$", re.M | re.S)
GTEST_SKIPPED_LINE_RE = re.compile(r"^\[  SKIPPED \] (\S+) \(\d+ ms\)$", re.M)
PYTEST_SKIP_RE = re.compile(r"^SKIPPED \[(\d+)\] ([^\n]*?:\d+): ([^\n]*)$", re.M)
MAX_GROUPS = 6
MAX_REASON = 90


# ne::cpu::why_not()'s answers (kernels/cpu_features.cpp): a message holding one is grouped by it.
WHY_NOT_RE = re.compile(r"(CPU lacks |OS does not enable |capped by NE_MAX_ISA|arch_prctl\().*$")


def normalize(reason):
    r = " ".join(reason.split())
    r = re.sub(r"\s*\([^()]*\)$", "", r)  # a trailing "(<details of this case>)"
    m = WHY_NOT_RE.search(r)
    if m:
        r = m.group(0)
    r = r.rstrip(".;: ") or "no reason given"
    return r if len(r) <= MAX_REASON else r[:MAX_REASON - 3] + "..."


def gtest_reasons(out):
    """{test name: message} of the GTEST_SKIP calls in one GoogleTest output."""
    found = {}
    for m in GTEST_SKIP_RE.finditer(out):
        msg = m.group(1).strip()
        # The message ends at the first blank line (gtest prints one after it).
        found[m.group(2)] = msg.split("\n\n")[0].strip() or "GTEST_SKIP without a message"
    for m in GTEST_SKIPPED_LINE_RE.finditer(out):
        found.setdefault(m.group(1), "GTEST_SKIP without a message")
    return found


def skips(path):
    """[(test, reason)] of one JUnit file."""
    root = ET.parse(path).getroot()
    res = []
    for tc in root.iter("testcase"):
        name = tc.get("name", "?")
        status = tc.get("status", "")
        out_el = tc.find("system-out")
        out = out_el.text if out_el is not None and out_el.text else ""
        sk = tc.find("skipped")
        if status in ("notrun", "disabled") or (sk is not None and status != "run"):
            g = gtest_reasons(out)
            if g:
                res.append((name, next(iter(g.values()))))
            else:
                res.append((name, (sk.get("message") if sk is not None else None) or status or "not run"))
            continue
        if status != "run":
            continue
        for test, msg in gtest_reasons(out).items():  # one entry per binary: its skipped cases
            res.append((f"{name}: {test}", msg))
        for m in PYTEST_SKIP_RE.finditer(out):  # pytest -rs summary
            for _ in range(int(m.group(1))):
                res.append((f"{name}: {m.group(2)}", m.group(3)))
    return res


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(__doc__)
    try:
        found = skips(args[0])
    except (OSError, ET.ParseError) as e:
        print(f"skips unknown ({type(e).__name__}: {e})")
        return
    groups = Counter(normalize(r) for _, r in found)
    line = f"{len(found)} skipped"
    if groups:
        top = groups.most_common(MAX_GROUPS)
        rest = sum(groups.values()) - sum(n for _, n in top)
        line += " (" + ", ".join(f"{n}: {r}" for r, n in top) + (f", {rest}: other reasons" if rest else "") + ")"
    print(line)
    if "--list" in sys.argv:
        for name, r in found:
            print(f"  skipped: {name}: {' '.join(r.split())}")


if __name__ == "__main__":
    main()
